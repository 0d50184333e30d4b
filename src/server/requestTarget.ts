// The request target of an HTTP request, parsed without trusting it. A target from the
// network may be anything (`//:99999`, `*`, a bare authority); `new URL` throws on many of
// them, and a throw inside an 'upgrade' or 'request' handler is an uncaught exception that
// ends the process. Every handler reads the target through this instead.
import type { IncomingMessage } from 'node:http';

export interface RequestTarget {
  pathname: string;
  searchParams: URLSearchParams;
}

/** The parsed target, or null when it is not a valid URL relative to this host. */
export function requestTarget(req: IncomingMessage): RequestTarget | null {
  const raw = req.url ?? '/';
  if (raw.length === 0 || raw.length > 8192) return null;
  try {
    const url = new URL(raw, 'http://localhost');
    return { pathname: url.pathname, searchParams: url.searchParams };
  } catch {
    return null;
  }
}
