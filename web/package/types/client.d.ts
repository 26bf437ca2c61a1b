// Types of @cowrite/client (web/src/client.js). Positions are Unicode code points, as on the wire.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** An index op: a positive number retains, a negative one deletes, a string (text) or an array
 *  (list) inserts: `[5, "hi", -2]`. */
export type Op = Array<number | string | Json[]>;
export type Unsubscribe = () => void;

export class Emitter<Events extends Record<string, unknown>> {
  on<K extends keyof Events>(type: K, fn: (detail: Events[K]) => void): Unsubscribe;
  once<K extends keyof Events>(type: K, fn: (detail: Events[K]) => void): Unsubscribe;
  off<K extends keyof Events>(type: K, fn: (detail: Events[K]) => void): void;
  emit<K extends keyof Events>(type: K, detail: Events[K]): void;
}

export type Status = "idle" | "connecting" | "connected" | "reconnecting" | "offline" | "closed";
export const STATUS: Readonly<{
  IDLE: "idle";
  CONNECTING: "connecting";
  CONNECTED: "connected";
  RECONNECTING: "reconnecting";
  OFFLINE: "offline";
  CLOSED: "closed";
}>;
export const PROTOCOL_VERSION: 1;

export interface User {
  id?: string;
  name?: string;
  color?: string;
  fields?: { [key: string]: Json };
}

export interface ClientOptions {
  /** ws://host:port/ws (wss:// behind TLS). */
  url: string;
  clientId?: string;
  user?: User;
  /** Without auth: a secret of 16-128 characters proving authorship of chat messages. */
  key?: string;
  /** A JWT when the server has a secret. */
  token?: string | null;
  WebSocket?: unknown;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number; offlineAfter?: number };
  /** A document's edit batches leave at most one per batchIntervalMs on average (25)... */
  batchIntervalMs?: number;
  /** ...in bursts of up to batchBurst (4): one that waited for an ack does not wait again. */
  batchBurst?: number;
  presenceIntervalMs?: number;
  historyVersions?: number;
}

export interface ServerError {
  code: string;
  message: string;
  doc?: string;
  edit_id?: string;
}

export interface ClientEvents {
  status: { status: Status; previous: Status; attempt: number; retryInMs?: number };
  welcome: { session: string; user: User; heartbeat_s: number; auth: boolean };
  error: ServerError;
  message: { type: string; [key: string]: unknown };
  [key: string]: unknown;
}

export class CowriteClient extends Emitter<ClientEvents> {
  constructor(options: ClientOptions);
  readonly clientId: string;
  readonly status: Status;
  readonly connected: boolean;
  /** This connection's session id (from `welcome`). */
  readonly session: string | null;
  readonly docs: Map<string, DocumentSession>;
  connect(): void;
  close(): void;
  reconnectNow(): void;
  open(id: string, options?: { create?: boolean; restore?: unknown }): DocumentSession;
  setUser(user: User): void;
  send(message: { type: string; [key: string]: unknown }): boolean;
}

export type Change =
  /** `before` (texts only, not enumerable): the local text the edit applies to. */
  | { type: "seq"; node: string; edit: Op; readonly before?: Rope }
  | { type: "set"; node: string; key: string | null; value: Json }
  | { type: "del"; node: string; key: string }
  | { type: "add"; node: string; amount: number };

export interface Cursor {
  node: string;
  anchor: number;
  head: number;
  version: number;
}

export interface Member {
  session: string;
  user: { id: string; name: string; color: string; fields?: { [key: string]: Json } };
  active: boolean;
  cursor: Cursor | null;
  /** [anchor, head] in the local view, kept on their characters as edits come in. */
  local: [number, number] | null;
  self: boolean;
}

export interface ChatMessage {
  id: number;
  author_id: string;
  author_name: string;
  text: string;
  created_ms: number;
  edited_ms: number | null;
  deleted: boolean;
}

export interface SessionEvents {
  joined: { version: number; snapshot: boolean; rejoin: boolean };
  change: { changes: Change[]; origin: "local" | "remote" | "snapshot" | "rejected"; clientId?: string };
  ack: { editId: string; version: number };
  sync: { synced: boolean };
  presence: { members: Map<string, Member>; changed: Member[]; left: string[] };
  chat: { message: ChatMessage };
  chat_page: { messages: ChatMessage[]; hasMore: boolean };
  saving: { pending: boolean };
  error: ServerError;
  deleted: ServerError;
  diverged: { node: string; version: number };
  [key: string]: unknown;
}

export class DocumentSession extends Emitter<SessionEvents> {
  readonly client: CowriteClient;
  readonly id: string;
  /** The first `joined`; rejects with `code: "unknown_document"` for a missing document. */
  readonly ready: Promise<DocumentSession>;
  readonly version: number;
  readonly rights: string[];
  readonly joined: boolean;
  /** Every local edit is acknowledged (durable on the server). */
  readonly synced: boolean;
  readonly savingPending: boolean;
  readonly deleted: boolean;
  readonly closed: boolean;
  readonly members: Map<string, Member>;
  readonly chat: Map<number, ChatMessage>;
  /** The protocol state (for an UndoManager). */
  readonly state: ThinDocState;
  readonly chatHasMore: boolean;
  value(node: string): Json | string | undefined;
  /** A text node's local value as an immutable rope (positions in O(log n)). */
  rope(node: string): Rope;
  whenSynced(): Promise<void>;
  text(name: string): TextHandle;
  list(name: string): ListHandle;
  map(name: string): MapHandle;
  register(name: string): RegisterHandle;
  counter(name: string): CounterHandle;
  edit(node: string, op: Op): void;
  set(node: string, key: string | null, value: Json): void;
  delete(node: string, key: string): void;
  add(node: string, amount: number): void;
  setCursor(node: string, anchor: number, head?: number): void;
  setActive(active: boolean): void;
  sendChat(text: string): void;
  editChat(id: number, text: string): void;
  deleteChat(id: number): void;
  chatHistory(options?: { before?: number | null; limit?: number }): Promise<{ messages: ChatMessage[]; hasMore: boolean }>;
  chatMessages(): ChatMessage[];
  leave(): void;
}

declare class Handle<V> {
  readonly session: DocumentSession;
  readonly node: string;
  readonly value: V;
}
export class TextHandle extends Handle<string> {
  /** Code points. */
  readonly length: number;
  insert(pos: number, text: string): void;
  delete(pos: number, count: number): void;
  replace(pos: number, count: number, text: string): void;
  /** Replace the whole value with `text` (one minimal diff). */
  setValue(text: string): void;
}
export class ListHandle extends Handle<Json[]> {
  insert(pos: number, ...items: Json[]): void;
  delete(pos: number, count?: number): void;
}
export class MapHandle extends Handle<{ [key: string]: Json }> {
  get(key: string): Json | undefined;
  set(key: string, value: Json): void;
  delete(key: string): void;
}
export class RegisterHandle extends Handle<Json> {
  set(value: Json): void;
}
export class CounterHandle extends Handle<number> {
  add(amount?: number): void;
}

export function cpLength(s: string): number;
export function cpToUtf16(s: string, cp: number, from?: number): number;
export function utf16ToCp(s: string, u: number, from?: number): number;
export function cpSlice(s: string, start: number, end?: number): string;
export class InvalidOperation extends Error {}
/** An immutable text (rope.js): lengths, conversions and slices in O(log n). */
export class Rope {
  static from(text: string | Rope): Rope;
  static readonly EMPTY: Rope;
  /** Code points. */
  readonly length: number;
  readonly utf16Length: number;
  cpToUtf16(cp: number): number;
  utf16ToCp(u: number): number;
  slice(start?: number, end?: number): string;
  insert(pos: number, text: string): Rope;
  delete(pos: number, count: number): Rope;
  apply(op: Op): Rope;
  equals(other: Rope | string): boolean;
  toString(): string;
  toJSON(): string;
}
export const ot: {
  apply(seq: string | Json[], op: Op): string | Json[];
  compose(a: Op, b: Op): Op;
  transform(a: Op, b: Op, side: "left" | "right"): Op;
  invert(op: Op, before: string | Json[]): Op;
  diff(a: string, b: string): Op;
  normalize(op: Op): Op;
  [name: string]: unknown;
};
export class ThinDocState {
  constructor(doc: string, clientId: string, options?: { historyVersions?: number });
  [name: string]: unknown;
}

/** Undo/redo of this client's own edits of one text node that never resurrects or duplicates
 *  text (docs/protocol.md, T11). Pass `apply` so the undo is sent like any edit. */
export class UndoManager {
  constructor(
    state: ThinDocState,
    node: string,
    options?: { apply?: (op: Op) => void; groupMs?: number; limit?: number; now?: () => number },
  );
  readonly canUndo: boolean;
  readonly canRedo: boolean;
  /** Corrections made: an undo/redo of ours raced a restore or a concurrent delete. */
  readonly compensations: number;
  /** The change made, or null when there is nothing (left) to undo. */
  undo(): { type: "seq"; node: string; edit: Op; readonly before?: Rope } | null;
  redo(): { type: "seq"; node: string; edit: Op; readonly before?: Rope } | null;
  /** The next edit starts a new undo step (a caret jump, a blur). */
  close(): void;
  /** A REST restore you asked for (its answer's `version`, `edits`) becomes one undo step. */
  adoptRestore(version: number, edits?: number): void;
  /** Stop following the document (the stacks are dropped). */
  detach(): void;
  reset(): void;
}
export const RESTORE_EDIT_PREFIX: string;
export function isRestoreEdit(meta: { edit_id?: unknown } | null | undefined): boolean;
