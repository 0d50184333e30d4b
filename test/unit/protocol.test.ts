import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { decodeAudioFrame, encodeAudioFrame } from '../../src/protocol/audioFrame.js';
import { parseClientMessage, ProtocolError } from '../../src/protocol/clientMessages.js';

describe('audio frames', () => {
  test.prop([fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 2000 })])(
    'round-trip stream, seq and samples',
    (stream, seq, samples) => {
      const frame = encodeAudioFrame(stream, seq, Int16Array.from(samples));
      expect(frame.byteLength).toBe(8 + samples.length * 2);
      expect(frame.readUInt32LE(0)).toBe(stream);
      const back = decodeAudioFrame(new Uint8Array(frame));
      expect([back.stream, back.seq, Array.from(back.pcm)]).toEqual([stream, seq, samples]);
    },
  );

  it('rejects frames too short or of odd payload length', () => {
    expect(() => decodeAudioFrame(new Uint8Array(7))).toThrow(RangeError);
    expect(() => decodeAudioFrame(new Uint8Array(9))).toThrow(RangeError);
  });
});

describe('client messages', () => {
  it('fills in the contract defaults', () => {
    expect(parseClientMessage('{"type":"speak","id":"a","text":"hi"}')).toEqual({
      type: 'speak',
      request: { id: 'a', text: 'hi', final: true, mode: 'interrupt' },
    });
    expect(parseClientMessage('{"type":"session.start","format":{"sampleRate":16000}}')).toEqual({
      type: 'session.start',
      sampleRate: 16000,
    });
  });

  it.each([
    ['nope', 'bad_request'],
    ['null', 'bad_request'],
    ['[]', 'bad_request'],
    ['{"type":7}', 'bad_request'],
    ['{"type":"fly"}', 'unknown_type'],
    ['{"type":"speak","id":"a"}', 'bad_request'],
    ['{"type":"speak","id":"a\\u0001","text":"x"}', 'bad_request'],
    [`{"type":"speak","id":"${'i'.repeat(129)}","text":"x"}`, 'bad_request'],
    ['{"type":"speak","id":"a","text":"x","mode":"shout"}', 'bad_request'],
    ['{"type":"stop","id":5}', 'bad_request'],
  ])('%s → %s', (raw, code) => {
    const result = parseClientMessage(raw);
    expect(result).toBeInstanceOf(ProtocolError);
    expect((result as ProtocolError).code).toBe(code);
  });

  test.prop([fc.string({ maxLength: 300 })])('never throws on arbitrary text', (raw) => {
    const result = parseClientMessage(raw);
    expect(result instanceof ProtocolError || typeof result.type === 'string').toBe(true);
  });

  test.prop([fc.jsonValue({ maxDepth: 6 })])('never throws on arbitrary JSON, deeply nested or not', (value) => {
    const result = parseClientMessage(JSON.stringify(value));
    expect(result instanceof ProtocolError || typeof result.type === 'string').toBe(true);
  });
});
