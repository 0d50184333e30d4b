// Client → server control messages: schema validation (zod) and typed protocol errors.
import { z } from 'zod';
import type { AgentSettings, ErrorCode, ListenRequest, SpeakRequest } from '../../machines/types.js';
import type { ResumeCursor } from '../engine/outboundLog.js';

const printableId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x20-\x7E]+$/, 'id must be 1..128 printable ASCII characters');

/** Most phrases a session may give as hints, and most characters in one. */
export const maxPhrases = 100;
export const maxPhraseChars = 200;

export const listenSchema = z.object({
  format: z
    .object({
      encoding: z.enum(['pcm_s16le', 'opus']).optional(),
      sampleRate: z.number().int().positive().max(384_000).optional(),
    })
    .optional(),
  language: z
    .string()
    .max(35)
    .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$/, 'language must be a BCP-47 tag such as "en" or "ar"')
    .optional(),
  // Plain text: no control characters (a recognizer may build a grammar from them).
  phrases: z
    .array(z.string().min(1).max(maxPhraseChars).regex(/^[^\p{Cc}]+$/u, 'phrases are plain text without control characters'))
    .max(maxPhrases)
    .optional(),
  interruptions: z.boolean().optional(),
});

/** Longest agent instructions (a system prompt) a session may give. */
export const maxInstructionChars = 8_000;

export const agentSchema = z.object({
  instructions: z.string().max(maxInstructionChars).optional(),
  voice: z.string().min(1).max(128).optional(),
});

export const sessionStartSchema = z.object({
  type: z.literal('session.start'),
  listen: listenSchema.optional(),
  agent: agentSchema.optional(),
  token: z.string().max(4096).optional(),
  voice: z.string().max(128).optional(),
  observe: z.boolean().optional(),
  /** Ask for a resume offer in session.ready (wire contract v2, "Resuming a session"). */
  resume: z.boolean().optional(),
  format: z
    .object({
      encoding: z.literal('pcm_s16le').optional(),
      sampleRate: z.number().int().positive().max(384_000).optional(),
    })
    .optional(),
});

export const speakSchema = z.object({
  type: z.literal('speak'),
  id: printableId,
  text: z.string(),
  voice: z.string().min(1).max(128).optional(),
  final: z.boolean().optional(),
  mode: z.enum(['interrupt', 'enqueue']).optional(),
});

export const stopSchema = z.object({
  type: z.literal('stop'),
  id: printableId.optional(),
});

export const pingSchema = z.object({ type: z.literal('ping') });

/** Most streams a resume may list as open: more than a session can hold (the playing one and a full queue). */
export const maxResumeStreams = 1_024;

export const sessionResumeSchema = z.object({
  type: z.literal('session.resume'),
  sessionId: z.string().min(1).max(64),
  token: z.string().min(1).max(256),
  lastStream: z.number().int().min(0).max(0xffff_ffff),
  streams: z
    .record(z.string().regex(/^[1-9]\d{0,9}$/, 'stream keys are positive integers'), z.number().int().min(-1).max(0xffff_ffff))
    .refine((streams) => Object.keys(streams).length <= maxResumeStreams, `at most ${maxResumeStreams} streams`)
    .optional(),
});

export const commitSchema = z.object({ type: z.literal('input.commit') });

export const playbackSchema = z.object({
  type: z.literal('playback'),
  stream: z.number().int().min(1).max(0xffff_ffff),
  playedMs: z.number().nonnegative().max(86_400_000),
});

export type SessionStartMessage = z.infer<typeof sessionStartSchema>;

export type ClientMessage =
  | { type: 'session.start'; token?: string; voice?: string; sampleRate?: number; observe?: boolean; listen?: ListenRequest; agent?: AgentSettings; resume?: true }
  | { type: 'session.resume'; sessionId: string; token: string; cursor: ResumeCursor }
  | { type: 'speak'; request: SpeakRequest }
  | { type: 'stop'; id?: string }
  | { type: 'ping' }
  | { type: 'input.commit' }
  | { type: 'playback'; stream: number; playedMs: number };

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly id?: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const knownTypes = new Set(['session.start', 'session.resume', 'speak', 'stop', 'ping', 'input.commit', 'playback']);

/** Parse one text frame. Returns the message, or a ProtocolError describing exactly what was wrong. */
export function parseClientMessage(raw: string): ClientMessage | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return new ProtocolError('bad_request', 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new ProtocolError('bad_request', 'frame must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  const id = typeof record.id === 'string' && record.id.length <= 128 ? record.id : undefined;
  if (typeof record.type !== 'string') {
    return new ProtocolError('bad_request', 'frame has no "type" string', id);
  }
  if (!knownTypes.has(record.type)) {
    return new ProtocolError('unknown_type', `unknown message type "${record.type.slice(0, 64)}"`, id);
  }
  switch (record.type) {
    case 'session.start': {
      const r = sessionStartSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error));
      return {
        type: 'session.start',
        ...(r.data.token !== undefined ? { token: r.data.token } : {}),
        ...(r.data.voice !== undefined ? { voice: r.data.voice } : {}),
        ...(r.data.format?.sampleRate !== undefined ? { sampleRate: r.data.format.sampleRate } : {}),
        ...(r.data.observe ? { observe: true } : {}),
        ...(r.data.listen ? { listen: listenRequest(r.data.listen) } : {}),
        ...(r.data.agent ? { agent: agentSettings(r.data.agent) } : {}),
        ...(r.data.resume ? { resume: true as const } : {}),
      };
    }
    case 'session.resume': {
      const r = sessionResumeSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error));
      const streams = new Map(Object.entries(r.data.streams ?? {}).map(([stream, seq]) => [Number(stream), seq]));
      return { type: 'session.resume', sessionId: r.data.sessionId, token: r.data.token, cursor: { lastStream: r.data.lastStream, streams } };
    }
    case 'input.commit': {
      const r = commitSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error));
      return { type: 'input.commit' };
    }
    case 'playback': {
      const r = playbackSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error));
      return { type: 'playback', stream: r.data.stream, playedMs: r.data.playedMs };
    }
    case 'speak': {
      const r = speakSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error), id);
      return {
        type: 'speak',
        request: {
          id: r.data.id,
          text: r.data.text,
          ...(r.data.voice !== undefined ? { voice: r.data.voice } : {}),
          final: r.data.final ?? true,
          mode: r.data.mode ?? 'interrupt',
        },
      };
    }
    case 'stop': {
      const r = stopSchema.safeParse(value);
      if (!r.success) return new ProtocolError('bad_request', describe(r.error), id);
      return r.data.id !== undefined ? { type: 'stop', id: r.data.id } : { type: 'stop' };
    }
    default:
      return { type: 'ping' };
  }
}

/** The agent settings as given (only the fields present). */
function agentSettings(agent: z.infer<typeof agentSchema>): AgentSettings {
  return {
    ...(agent.instructions !== undefined ? { instructions: agent.instructions } : {}),
    ...(agent.voice !== undefined ? { voice: agent.voice } : {}),
  };
}

/** The listen request with its defaults: language 'en', interruptions on. */
function listenRequest(listen: z.infer<typeof listenSchema>): ListenRequest {
  const format = listen.format;
  return {
    ...(format ? { format: { encoding: format.encoding ?? 'pcm_s16le', sampleRate: format.sampleRate ?? 16_000 } } : {}),
    language: listen.language ?? 'en',
    ...(listen.phrases ? { phrases: listen.phrases } : {}),
    interruptions: listen.interruptions ?? true,
  };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.length > 0 ? issue.path.join('.') : 'message';
  return `${path}: ${issue.message}`.slice(0, 200);
}
