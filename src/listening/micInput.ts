// The per-session gate every microphone frame passes before anything else hears it: it checks
// the frame's shape against the session's listen format, decodes Opus, and holds the uplink to
// real time. It keeps no audio (a refused frame is dropped, an accepted one handed back), so a
// client can neither grow server memory nor make the server listen faster than time passes.
import type { WireError } from '../../machines/types.js';
import { allocInt16 } from '../audio/pcm.js';
import { maxOpusPacketBytes, OpusUplink, opusPacketDurationMs } from './opusUplink.js';
import { listenSampleRate } from './types.js';

export interface ListenFormat {
  encoding: 'pcm_s16le' | 'opus';
  sampleRate: typeof listenSampleRate;
}

export interface MicInputOptions {
  /**
   * Audio a client may send ahead of real time (network bunching, a reconnecting socket's
   * backlog). Default 2000 ms.
   */
  burstMs?: number;
  /** Milliseconds on a monotonic clock (default performance.now); tests drive it. */
  now?: () => number;
}

export type MicFrameResult =
  | { ok: true; pcm: Int16Array; /** Media position after this frame (ms of audio accepted). */ audioMs: number }
  | { ok: false; error: WireError };

/** Frame durations the wire contract allows. */
export const minMicFrameMs = 10;
export const maxMicFrameMs = 250;

const samplesPerMs = listenSampleRate / 1000;

export class MicInput {
  private readonly burstMs: number;
  private readonly now: () => number;
  private readonly opus: OpusUplink | undefined;
  /**
   * A token bucket of audio milliseconds: it fills at wall-clock speed up to `burstMs` and
   * each accepted frame takes its duration. Accepted audio therefore never exceeds wall time
   * since the first frame plus the burst, and a pause does not bank more than the burst
   * (a client silent for a minute cannot then flood a minute of audio).
   */
  private creditMs: number;
  private lastRefill: number | undefined;
  private acceptedSamples = 0;
  private closed = false;

  constructor(
    readonly format: ListenFormat,
    { burstMs = 2000, now = () => performance.now() }: MicInputOptions = {},
  ) {
    if (format.sampleRate !== listenSampleRate) throw new RangeError(`the listen format is ${listenSampleRate} Hz, not ${format.sampleRate}`);
    if (format.encoding !== 'pcm_s16le' && format.encoding !== 'opus') throw new RangeError(`unknown listen encoding ${String(format.encoding)}`);
    if (!(burstMs >= maxMicFrameMs)) throw new RangeError(`burstMs must be at least one largest frame (${maxMicFrameMs} ms)`);
    this.burstMs = burstMs;
    this.creditMs = burstMs;
    this.now = now;
    this.opus = format.encoding === 'opus' ? new OpusUplink() : undefined;
  }

  /** Media position: milliseconds of audio accepted so far. */
  get audioMs(): number {
    return this.acceptedSamples / samplesPerMs;
  }

  /** Checks, paces and decodes one binary frame. Never throws. */
  accept(frame: Uint8Array): MicFrameResult {
    if (this.closed) return refuse('bad_request', 'this session no longer listens');
    const durationMs = this.measure(frame);
    if (typeof durationMs === 'string') return refuse('bad_audio', durationMs);

    // Pace before decoding: a flood costs no decode work.
    const at = this.now();
    this.creditMs = Math.min(this.burstMs, this.creditMs + (this.lastRefill === undefined ? 0 : Math.max(0, at - this.lastRefill)));
    this.lastRefill = at;
    if (durationMs > this.creditMs) {
      return refuse(
        'audio_overrun',
        `microphone audio arrives faster than real time: ${durationMs} ms frame dropped, ${Math.floor(this.creditMs)} ms of burst left`,
      );
    }

    let pcm: Int16Array;
    if (this.opus) {
      const decoded = this.opus.decode(frame);
      if (!decoded.ok) return decoded;
      pcm = decoded.pcm;
    } else {
      // Copy: the frame's bytes may sit at an odd offset in a socket buffer that is reused.
      pcm = allocInt16(frame.length / 2);
      new Uint8Array(pcm.buffer, pcm.byteOffset, frame.length).set(frame);
    }
    // Charge what was decoded (equal to the header's promise for a well-formed packet).
    const ms = pcm.length / samplesPerMs;
    this.creditMs -= ms;
    this.acceptedSamples += pcm.length;
    return { ok: true, pcm, audioMs: this.audioMs };
  }

  /** Frees the Opus decoder. Idempotent; frames after it are refused. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opus?.close();
  }

  /** The frame's duration in ms, or why its shape is wrong. */
  private measure(frame: Uint8Array): number | string {
    let ms: number;
    if (this.opus) {
      if (frame.length > maxOpusPacketBytes) return `an Opus frame is one packet of at most ${maxOpusPacketBytes} bytes; this one has ${frame.length}`;
      const header = opusPacketDurationMs(frame);
      if (header === undefined) return `the frame (${frame.length} bytes) does not start with a valid Opus packet header`;
      ms = header;
    } else {
      if (frame.length % 2 !== 0) return `a pcm_s16le frame holds whole 16-bit samples; this one has an odd byte count (${frame.length})`;
      ms = frame.length / 2 / samplesPerMs;
    }
    if (ms < minMicFrameMs || ms > maxMicFrameMs) {
      return `microphone frames must be ${minMicFrameMs}-${maxMicFrameMs} ms of audio; this one is ${ms} ms`;
    }
    return ms;
  }
}

function refuse(code: WireError['code'], message: string): MicFrameResult {
  return { ok: false, error: { code, message } };
}
