// The npm graphql-ws client (the one frontends use), driven by tests/node_client.py.
//
// Command: one JSON object, as the first argument or (if there is none) on stdin:
//   {"url": "ws://127.0.0.1:PORT/graphql", "connectionParams": {...},
//    "operations": [{"id": "1", "query": "...", "variables": {...}, "operationName": null,
//                    "wireId": null}],
//    "retryAttempts": 0, "lazy": false, "keepAlive": 0, ...}
// Output: one JSON line per thing that happens (written synchronously, so a line is out
// before the next thing happens): connecting, opened, connected, ping, pong, next, error,
// complete, closed, socket_error. The process exits when every operation has ended, or
// when the client gives up on the socket. When the command came as an argument, stdin is a
// lifeline: its end (the test is over, or its process died) closes the client and exits.

import { writeSync } from "node:fs";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

// Options handed to createClient as they are; anything else in the command is a mistake.
const CLIENT_OPTIONS = [
  "connectionAckWaitTimeout",
  "disablePong",
  "keepAlive",
  "lazy",
  "lazyCloseTimeout",
  "retryAttempts",
];
const COMMAND_KEYS = ["url", "connectionParams", "operations", ...CLIENT_OPTIONS];
const CLOSE_WAIT_MS = 3000;

function emit(event) {
  // writeSync: a pipe written by process.stdout may still hold lines when we exit.
  writeSync(1, JSON.stringify(event) + "\n");
}

function fail(message) {
  writeSync(2, `client.mjs: ${message}\n`);
  process.exit(2);
}

async function readCommand() {
  const argument = process.argv[2];
  let text = argument;
  if (argument === undefined) {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    text = Buffer.concat(chunks).toString("utf8");
  }
  let command;
  try {
    command = JSON.parse(text);
  } catch (error) {
    fail(`the command is not JSON: ${error.message}`);
  }
  const unknown = Object.keys(command).filter((key) => !COMMAND_KEYS.includes(key));
  if (unknown.length) fail(`unknown command keys: ${unknown.join(", ")}`);
  if (typeof command.url !== "string") fail("the command needs a url");
  const ids = (command.operations ?? []).map((operation) => operation.id);
  if (ids.some((id) => typeof id !== "string") || new Set(ids).size !== ids.length) {
    fail("every operation needs an id, a string of its own");
  }
  return { command, lifeline: argument !== undefined };
}

// What graphql-ws hands to sink.error (or onNonLazyError), as JSON.
function describeError(error) {
  if (Array.isArray(error)) return { kind: "graphql", errors: error };
  if (error && typeof error === "object" && "code" in error && "reason" in error) {
    const message = `closed ${error.code}: ${error.reason}`;
    return { kind: "close", code: error.code, reason: error.reason, errors: [{ message }] };
  }
  if (error instanceof Error) {
    return { kind: "error", errors: [{ message: error.message, name: error.name }] };
  }
  // ws's ErrorEvent (a failed connection) is neither an Error nor a CloseEvent.
  const message = error?.message ?? error?.error?.message ?? String(error);
  return { kind: "error", errors: [{ message }] };
}

function clientOptions(command) {
  const options = { retryAttempts: 0, lazy: false };
  for (const key of CLIENT_OPTIONS) {
    if (key in command) options[key] = command[key];
  }
  return options;
}

function run({ command, lifeline }) {
  const operations = command.operations ?? [];
  // The id on the wire is the id the test gave, or its wireId (to provoke the server).
  const idOf = new Map();
  let pending = operations.length;
  let socketOpen = false;
  let finishing = false;
  let whenClosed = () => {};

  async function finish() {
    if (finishing) return;
    finishing = true;
    const closed = new Promise((resolve) => (whenClosed = resolve));
    // dispose waits for a connection under way, which may never come: bounded.
    await Promise.race([client.dispose().catch(() => {}), delay(CLOSE_WAIT_MS)]);
    if (socketOpen) await Promise.race([closed, delay(CLOSE_WAIT_MS)]);
    process.exit(0);
  }

  function ended() {
    pending -= 1;
    if (pending === 0) finish();
  }

  const client = createClient({
    ...clientOptions(command),
    url: command.url,
    connectionParams: command.connectionParams,
    webSocketImpl: WebSocket,
    generateID: (payload) => idOf.get(payload),
    onNonLazyError: (error) => {
      emit({ event: "error", id: null, ...describeError(error) });
      // Later, not now: the operations have yet to see this error. Finishing first would
      // dispose the client, and graphql-ws then completes them instead.
      setImmediate(finish);
    },
    on: {
      connecting: (isRetry) => emit({ event: "connecting", isRetry }),
      opened: () => {
        socketOpen = true;
        emit({ event: "opened" });
      },
      connected: (_socket, payload) => emit({ event: "connected", payload: payload ?? null }),
      ping: (received, payload) => emit({ event: "ping", received, payload: payload ?? null }),
      pong: (received, payload) => emit({ event: "pong", received, payload: payload ?? null }),
      closed: (event) => {
        socketOpen = false;
        emit({ event: "closed", code: event.code, reason: event.reason, wasClean: event.wasClean });
        whenClosed();
      },
      error: (error) => emit({ event: "socket_error", ...describeError(error) }),
    },
  });

  for (const operation of operations) {
    const payload = {
      query: operation.query,
      variables: operation.variables ?? undefined,
      operationName: operation.operationName ?? undefined,
    };
    idOf.set(payload, operation.wireId ?? operation.id);
    client.subscribe(payload, {
      next: (result) => emit({ event: "next", id: operation.id, payload: result }),
      error: (error) => {
        emit({ event: "error", id: operation.id, ...describeError(error) });
        ended();
      },
      complete: () => {
        emit({ event: "complete", id: operation.id });
        ended();
      },
    });
  }
  if (operations.length === 0 && command.lazy) finish(); // nothing would ever connect
  if (lifeline) {
    process.stdin.on("end", finish).resume();
  }
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

run(await readCommand());
