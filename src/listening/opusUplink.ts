// Decodes the Opus microphone uplink: one Opus packet per binary frame, into 16 kHz mono s16.
// One decoder per session (Opus decoding is stateful: each packet refines the next), made with
// opusscript (libopus in wasm, no native build). A packet that does not decode is a typed
// failure, never a throw: it came from the network.
import OpusScript from 'opusscript';
import type { WireError } from '../../machines/types.js';
import { allocInt16 } from '../audio/pcm.js';
import { listenSampleRate } from './types.js';

/** The largest Opus packet (RFC 6716, section 3.2.1): anything longer is not one packet. */
export const maxOpusPacketBytes = 1275;

/**
 * The audio length of one Opus packet from its header alone (RFC 6716, section 3.1), so a
 * frame can be measured before it costs a decode; undefined when the header is not valid.
 */
export function opusPacketDurationMs(packet: Uint8Array): number | undefined {
  const toc = packet[0];
  if (toc === undefined) return undefined;
  const config = toc >> 3;
  // Configs 0-11 SILK (10/20/40/60 ms), 12-15 hybrid (10/20 ms), 16-31 CELT (2.5/5/10/20 ms).
  const frameMs = config < 12 ? [10, 20, 40, 60][config % 4]! : config < 16 ? [10, 20][config % 2]! : [2.5, 5, 10, 20][config % 4]!;
  const code = toc & 3;
  let count: number;
  if (code === 0) count = 1;
  else if (code === 1 || code === 2) count = 2;
  else {
    const countByte = packet[1];
    if (countByte === undefined) return undefined;
    count = countByte & 0x3f;
  }
  const ms = count * frameMs;
  return count > 0 && ms <= 120 ? ms : undefined; // a packet holds at most 120 ms
}

export type OpusDecodeResult = { ok: true; pcm: Int16Array } | { ok: false; error: WireError };

export class OpusUplink {
  private decoder: OpusScript | undefined;

  constructor() {
    // VOIP only matters to an encoder; the decoder takes whatever the client encoded.
    this.decoder = new OpusScript(listenSampleRate, 1, OpusScript.Application.VOIP);
  }

  /** Decodes one packet into a fresh Int16Array the caller owns. */
  decode(packet: Uint8Array): OpusDecodeResult {
    if (!this.decoder) return failure('the Opus decoder is closed');
    if (packet.length === 0) {
      // libopus takes an empty packet as "lost" and invents audio: a client never means that.
      return failure('an Opus frame must hold one packet; this one is empty');
    }
    if (packet.length > maxOpusPacketBytes) {
      return failure(`an Opus packet is at most ${maxOpusPacketBytes} bytes; this frame has ${packet.length}`);
    }
    let bytes: Buffer;
    try {
      bytes = this.decoder.decode(Buffer.from(packet.buffer, packet.byteOffset, packet.length));
    } catch (err) {
      return failure(`the frame is not an Opus packet (${err instanceof Error ? err.message : String(err)})`);
    }
    if (bytes.length === 0 || bytes.length % 2 !== 0) return failure('the Opus packet decoded to no audio');
    // opusscript returns a Buffer over its own storage at any byte offset: copy into an
    // aligned array the caller may keep.
    const pcm = allocInt16(bytes.length / 2);
    new Uint8Array(pcm.buffer, pcm.byteOffset, bytes.length).set(bytes);
    return { ok: true, pcm };
  }

  /** Frees the decoder's wasm memory. Idempotent (opusscript's delete() would free twice). */
  close(): void {
    const decoder = this.decoder;
    this.decoder = undefined;
    decoder?.delete();
  }
}

function failure(message: string): OpusDecodeResult {
  return { ok: false, error: { code: 'bad_audio', message } };
}
