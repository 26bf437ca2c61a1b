// Types of @cowrite/client/react: React hooks over the client.
import type {
  ChatMessage,
  ClientOptions,
  CowriteClient,
  DocumentSession,
  Json,
  Member,
  ServerError,
  Status,
  TextHandle,
} from "./client.js";

/** A client for the component's life: connected at mount, closed at unmount. */
export function useClient(options: ClientOptions): CowriteClient;
export function useStatus(client: CowriteClient | null): Status;

export interface DocumentState {
  session: DocumentSession | null;
  error: ServerError | null;
  ready: boolean;
  /** Every local edit acknowledged (durable): drive "All changes saved" with it. */
  synced: boolean;
  version: number;
  rights: string[];
  deleted: boolean;
  savingPending: boolean;
}
/** Open document `id` while mounted (left at unmount or when `id` changes). */
export function useDocument(
  client: CowriteClient | null,
  id: string | null,
  options?: { create?: boolean },
): DocumentState;
export function useValue(session: DocumentSession | null, node: string): Json | string | undefined;
export function useText(session: DocumentSession | null, name: string): [string, TextHandle | null];
export function usePresence(session: DocumentSession | null): Member[];
export interface Chat {
  messages: ChatMessage[];
  hasMore: boolean;
  send(text: string): void;
  edit(id: number, text: string): void;
  remove(id: number): void;
  loadEarlier(): Promise<{ messages: ChatMessage[]; hasMore: boolean } | null>;
}
export function useChat(session: DocumentSession | null): Chat;
