// Incremental RIFF/WAVE reader for audio that arrives over a network in arbitrary slices.
// It walks the real chunk layout (fmt, LIST, fact, … in any order before data; odd-sized
// chunks are padded; unknown chunks are skipped without buffering them), reads the rate
// from the header, and accepts the placeholder data sizes streaming encoders write
// (0 or 0xFFFFFFFF mean "until the end"). Why not a library: the npm `wav` Reader (last
// release 2018) rejects a LIST chunk before fmt and buffers unknown chunks whole, which an
// upstream sending an absurd chunk size would turn into unbounded memory.
import { allocInt16, concatInt16 } from './pcm.js';

export interface WavFormat {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
}

/** The bytes are not a WAV this reader can turn into 16-bit PCM. */
export class WavFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WavFormatError';
  }
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const noBytes = new Uint8Array(0);

type Phase = 'riff' | 'chunkHeader' | 'fmt' | 'skip' | 'data' | 'trailer';

export interface WavStreamParserOptions {
  /** Most bytes of non-audio chunks accepted before the data chunk (default 64 KiB). */
  maxHeaderBytes?: number;
}

export class WavStreamParser {
  format: WavFormat | null = null;
  private phase: Phase = 'riff';
  private pending: Uint8Array = new Uint8Array(0);
  private need = 12;
  private skipLeft = 0;
  private dataLeft = 0;
  private headerBytes = 0;
  private readonly maxHeaderBytes: number;

  constructor(options: WavStreamParserOptions = {}) {
    this.maxHeaderBytes = options.maxHeaderBytes ?? 64 * 1024;
  }

  /** True once the header was read and audio samples may follow. */
  get inData(): boolean {
    return this.phase === 'data';
  }

  /** Feed the next slice; returns the mono 16-bit samples it completes. Throws WavFormatError. */
  push(bytes: Uint8Array): Int16Array {
    const out: Int16Array[] = [];
    let input = bytes;
    while (input.length > 0) {
      if (this.phase === 'trailer') break;
      if (this.phase === 'skip') {
        const n = Math.min(this.skipLeft, input.length);
        this.skipLeft -= n;
        input = input.subarray(n);
        if (this.skipLeft === 0) this.expectChunkHeader();
        continue;
      }
      if (this.phase === 'data') {
        const n = Math.min(this.dataLeft, input.length);
        out.push(this.decode(input.subarray(0, n)));
        this.dataLeft -= n;
        input = input.subarray(n);
        if (this.dataLeft === 0) this.phase = 'trailer'; // chunks after the audio are of no use
        continue;
      }
      // Header phases: gather exactly `need` bytes, then interpret them.
      const take = Math.min(this.need - this.pending.length, input.length);
      this.pending = appendBytes(this.pending, input.subarray(0, take));
      input = input.subarray(take);
      if (this.pending.length < this.need) break;
      const block = this.pending;
      this.pending = new Uint8Array(0);
      this.onHeaderBlock(block);
    }
    return out.length === 1 ? out[0]! : concatInt16(out);
  }

  /** The input ended. Throws if it ended before any audio could be read. */
  end(): Int16Array {
    if (this.phase !== 'data' && this.phase !== 'trailer') {
      throw new WavFormatError(this.format ? 'WAV ended before its data chunk' : 'WAV ended inside its header');
    }
    // A dangling odd byte (half a sample) is dropped: it cannot be played.
    this.pending = new Uint8Array(0);
    return new Int16Array(0);
  }

  private onHeaderBlock(block: Uint8Array): void {
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    switch (this.phase) {
      case 'riff': {
        const riff = ascii(block, 0);
        const wave = ascii(block, 8);
        if (riff !== 'RIFF' || wave !== 'WAVE') throw new WavFormatError(`not a RIFF/WAVE stream (starts with "${printable(riff)}")`);
        this.expectChunkHeader();
        return;
      }
      case 'chunkHeader': {
        const id = ascii(block, 0);
        const size = view.getUint32(4, true);
        if (id === 'data') {
          if (!this.format) throw new WavFormatError('WAV data chunk before its fmt chunk');
          // Streaming encoders cannot know the length up front and write 0 or the maximum.
          this.dataLeft = size === 0 || size === 0xffffffff ? Number.POSITIVE_INFINITY : size;
          this.phase = 'data';
          return;
        }
        const padded = size + (size % 2); // RIFF chunks are word-aligned
        this.headerBytes += 8 + padded;
        if (this.headerBytes > this.maxHeaderBytes) {
          throw new WavFormatError(`WAV header chunks exceed ${this.maxHeaderBytes} bytes (chunk "${printable(id)}" of ${size} bytes)`);
        }
        if (id === 'fmt ') {
          if (size < 16) throw new WavFormatError(`WAV fmt chunk too short (${size} bytes)`);
          this.phase = 'fmt';
          this.need = padded;
          return;
        }
        if (padded === 0) {
          this.expectChunkHeader();
          return;
        }
        this.phase = 'skip';
        this.skipLeft = padded;
        return;
      }
      case 'fmt': {
        const audioFormat = view.getUint16(0, true);
        const channels = view.getUint16(2, true);
        const sampleRate = view.getUint32(4, true);
        const bitsPerSample = view.getUint16(14, true);
        const subFormat = audioFormat === WAVE_FORMAT_EXTENSIBLE && block.length >= 26 ? view.getUint16(24, true) : audioFormat;
        if (subFormat !== WAVE_FORMAT_PCM || bitsPerSample !== 16) {
          throw new WavFormatError(`unsupported WAV encoding (format ${audioFormat}, ${bitsPerSample} bits); 16-bit PCM expected`);
        }
        if (channels < 1 || channels > 8) throw new WavFormatError(`unsupported WAV channel count ${channels}`);
        if (sampleRate < 4_000 || sampleRate > 192_000) throw new WavFormatError(`unsupported WAV sample rate ${sampleRate}`);
        this.format = { sampleRate, channels, bitsPerSample };
        this.expectChunkHeader();
        return;
      }
      default:
        return;
    }
  }

  private expectChunkHeader(): void {
    this.phase = 'chunkHeader';
    this.need = 8;
  }

  /** Little-endian 16-bit frames → mono samples; a partial frame waits for the next slice. */
  private decode(bytes: Uint8Array): Int16Array {
    const channels = this.format!.channels;
    const frameBytes = 2 * channels;
    const joined = this.pending.length > 0 ? appendBytes(this.pending, bytes) : bytes;
    const whole = joined.length - (joined.length % frameBytes);
    this.pending = whole === joined.length ? noBytes : joined.slice(whole);
    const frames = whole / frameBytes;
    const out = allocInt16(frames);
    if (channels === 1 && littleEndian) {
      // Mono s16le is already the samples' memory layout: one copy, no per-sample loop.
      new Uint8Array(out.buffer, out.byteOffset, whole).set(joined.subarray(0, whole));
      return out;
    }
    const view = new DataView(joined.buffer, joined.byteOffset, whole);
    for (let f = 0; f < frames; f++) {
      if (channels === 1) {
        out[f] = view.getInt16(f * 2, true);
        continue;
      }
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += view.getInt16((f * channels + c) * 2, true);
      out[f] = Math.round(sum / channels);
    }
    return out;
  }
}

function ascii(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

function appendBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
