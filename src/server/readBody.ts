// A request body as text (or bytes), with a size limit and a deadline: refused as soon as the declared
// or the actual size passes the limit, or the deadline passes before the body is complete.
// Past the limit the rest is drained unread so a response can still be sent; past the
// deadline the caller answers 408 with `Connection: close`, so the connection goes with it.
import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
  }
}

export class BodyTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`request body not complete within ${timeoutMs} ms`);
  }
}

export async function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<string> {
  return (await readBodyBytes(req, limit, timeoutMs)).toString('utf8');
}

/** The same, as bytes: for binary bodies (multipart uploads), where a UTF-8 decode would corrupt them. */
export function readBodyBytes(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new BodyTooLargeError(limit));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    const done = () => {
      clearTimeout(deadline);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        done();
        parts.length = 0;
        req.resume();
        reject(new BodyTooLargeError(limit));
        return;
      }
      parts.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(parts));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const deadline = setTimeout(() => {
      done();
      parts.length = 0;
      req.resume();
      reject(new BodyTimeoutError(timeoutMs));
    }, timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
