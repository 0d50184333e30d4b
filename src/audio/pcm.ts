// PCM sample-format conversions between the wire's Int16 and the resampler's Float32.

export function int16ToFloat32(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
  return out;
}

export function float32ToInt16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]!));
    out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return out;
}

/**
 * `length` samples, uninitialized, in Node's pooled buffer memory: the caller writes every one.
 * A small typed array made with `new` gets its own off-heap ArrayBuffer, whose allocation and
 * GC accounting cost more than filling it (audio makes tens of these per second per stream).
 */
export function allocInt16(length: number): Int16Array {
  const bytes = Buffer.allocUnsafe(length * 2); // pool slices are 8-byte aligned
  return new Int16Array(bytes.buffer, bytes.byteOffset, length);
}

export function concatInt16(parts: Int16Array[]): Int16Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Int16Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * A canonical 44-byte PCM WAV header. `dataBytes` undefined writes the streaming
 * placeholder (0xFFFFFFFF), which readers take as "until the end of the stream".
 */
export function wavHeader(sampleRate: number, dataBytes?: number): Uint8Array {
  const header = new Uint8Array(44);
  const view = new DataView(header.buffer);
  const size = dataBytes ?? 0xffffffff;
  header.set([0x52, 0x49, 0x46, 0x46], 0); // RIFF
  view.setUint32(4, dataBytes === undefined ? 0xffffffff : 36 + size, true);
  header.set([0x57, 0x41, 0x56, 0x45, 0x66, 0x6d, 0x74, 0x20], 8); // WAVEfmt
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  header.set([0x64, 0x61, 0x74, 0x61], 36); // data
  view.setUint32(40, size, true);
  return header;
}

/** Int16 samples as little-endian bytes (a view when the platform is little-endian). */
export function int16ToBytes(pcm: Int16Array): Uint8Array {
  return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}
