// The mmo client protocol (docs/PROTOCOL.md), for the browser: each
// WebSocket binary message is one frame, `u32 length | u8 type | body`,
// big-endian. encode* functions return an ArrayBuffer to send; decode()
// turns a received message into a plain object with a `kind` name.
"use strict";

const MMO = (() => {
  const VERSION = 1;
  const T = {
    HELLO: 0x01, LOGIN: 0x02, MOVE: 0x03, PING: 0x04, CHAT: 0x05, CHANGE_ZONE: 0x06,
    WHO: 0x07, BYE: 0x08, RESUME: 0x09,
    WELCOME: 0x81, ENTER_WORLD: 0x82, TICK: 0x83, ENTER: 0x84, LEAVE: 0x85, MOVES: 0x86,
    CORRECTION: 0x87, PONG: 0x88, CHAT_MESSAGE: 0x89, WHO_REPLY: 0x8a, NOTICE: 0x8b,
    ERROR: 0x8c, RESYNC: 0x8d, TICKET: 0x8e, REDIRECT: 0x8f,
  };
  const CHANNEL = { SAY: 0, ZONE: 1, WHISPER: 2, GLOBAL: 3, SYSTEM: 4 };
  const KIND = { PLAYER: 0, NPC: 1 };
  const NOTICE = { INFO: 0, SHUTDOWN: 1 };
  const ERRORS = {
    1: "BAD_FRAME", 2: "FRAME_TOO_LARGE", 3: "VERSION_MISMATCH", 4: "BAD_STATE",
    5: "AUTH_FAILED", 6: "NAME_IN_USE", 7: "LOGIN_TIMEOUT", 8: "IDLE_TIMEOUT",
    9: "RATE_LIMITED", 10: "TOO_MANY_CONNECTIONS", 11: "UNKNOWN_ZONE", 12: "UNKNOWN_PLAYER",
    13: "SERVER_FULL", 14: "SLOW_READER", 15: "SHUTTING_DOWN", 16: "INVALID",
    17: "REGISTRATION_CLOSED", 18: "TOKEN_REFUSED",
  };
  // Errors after which the session goes on (section 11); any other ends it.
  const RECOVERABLE = new Set([9, 11, 12, 16]);
  const CORRECTIONS = { 1: "too fast", 2: "out of bounds", 3: "rate limited", 4: "invalid", 5: "teleport" };

  const utf8 = new TextEncoder();
  const text = new TextDecoder("utf-8");

  // One frame under construction: fields appended in wire order.
  class Writer {
    constructor(type) {
      this.bytes = new Uint8Array(64);
      this.view = new DataView(this.bytes.buffer);
      this.at = 5;
      this.type = type;
    }
    room(n) {
      if (this.at + n <= this.bytes.length) return;
      const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.at + n));
      bigger.set(this.bytes);
      this.bytes = bigger;
      this.view = new DataView(bigger.buffer);
    }
    u8(v) { this.room(1); this.view.setUint8(this.at, v); this.at += 1; return this; }
    u16(v) { this.room(2); this.view.setUint16(this.at, v); this.at += 2; return this; }
    u32(v) { this.room(4); this.view.setUint32(this.at, v >>> 0); this.at += 4; return this; }
    f32(v) { this.room(4); this.view.setFloat32(this.at, v); this.at += 4; return this; }
    f64(v) { this.room(8); this.view.setFloat64(this.at, v); this.at += 8; return this; }
    str(s) {
      const b = utf8.encode(s);
      this.u16(b.length);
      this.room(b.length);
      this.bytes.set(b, this.at);
      this.at += b.length;
      return this;
    }
    frame() {
      this.view.setUint32(0, this.at - 4);
      this.view.setUint8(4, this.type);
      return this.bytes.buffer.slice(0, this.at);
    }
  }

  class Reader {
    constructor(buffer) {
      this.view = new DataView(buffer);
      this.bytes = new Uint8Array(buffer);
      this.at = 5;
    }
    u8() { const v = this.view.getUint8(this.at); this.at += 1; return v; }
    u16() { const v = this.view.getUint16(this.at); this.at += 2; return v; }
    u32() { const v = this.view.getUint32(this.at); this.at += 4; return v; }
    f32() { const v = this.view.getFloat32(this.at); this.at += 4; return v; }
    f64() { const v = this.view.getFloat64(this.at); this.at += 8; return v; }
    str() {
      const n = this.u16();
      const s = text.decode(this.bytes.subarray(this.at, this.at + n));
      this.at += n;
      return s;
    }
  }

  const encode = {
    hello: (client) => new Writer(T.HELLO).u16(VERSION).str(client).frame(),
    login: (name, password) => new Writer(T.LOGIN).str(name).str(password).frame(),
    resume: (token) => new Writer(T.RESUME).str(token).frame(),
    move: (seq, x, y) => new Writer(T.MOVE).u32(seq).f32(x).f32(y).frame(),
    ping: (token, clientTime) => new Writer(T.PING).u32(token).f64(clientTime).frame(),
    chat: (channel, textValue, target) =>
      new Writer(T.CHAT).u8(channel).str(target || "").str(textValue).frame(),
    changeZone: (zone) => new Writer(T.CHANGE_ZONE).str(zone).frame(),
    who: () => new Writer(T.WHO).frame(),
    bye: () => new Writer(T.BYE).frame(),
  };

  const decoders = {
    [T.WELCOME]: (r) => ({ kind: "welcome", version: r.u16(), maxFrame: r.u32(), nodeId: r.str(), server: r.str() }),
    [T.ENTER_WORLD]: (r) => ({
      kind: "enterWorld", entityId: r.u32(), x: r.f32(), y: r.f32(), zoneWidth: r.f32(),
      zoneHeight: r.f32(), aoi: r.f32(), tickHz: r.u16(), zone: r.str(), nodeId: r.str(),
    }),
    [T.TICK]: (r) => ({ kind: "tick", tick: r.u32(), serverTime: r.f64() }),
    [T.ENTER]: (r) => {
      const n = r.u16();
      const entities = [];
      for (let i = 0; i < n; i++) {
        entities.push({ id: r.u32(), type: r.u8(), x: r.f32(), y: r.f32(), name: r.str() });
      }
      return { kind: "enter", entities };
    },
    [T.LEAVE]: (r) => {
      const n = r.u16();
      const ids = [];
      for (let i = 0; i < n; i++) ids.push(r.u32());
      return { kind: "leave", ids };
    },
    [T.MOVES]: (r) => {
      const n = r.u16();
      const moves = [];
      for (let i = 0; i < n; i++) moves.push({ id: r.u32(), x: r.f32(), y: r.f32() });
      return { kind: "moves", moves };
    },
    [T.CORRECTION]: (r) => ({ kind: "correction", seq: r.u32(), x: r.f32(), y: r.f32(), reason: r.u8() }),
    [T.PONG]: (r) => ({ kind: "pong", token: r.u32(), clientTime: r.f64(), serverTime: r.f64() }),
    [T.CHAT_MESSAGE]: (r) => ({ kind: "chat", channel: r.u8(), sender: r.str(), text: r.str() }),
    [T.WHO_REPLY]: (r) => {
      const total = r.u32();
      const n = r.u16();
      const players = [];
      for (let i = 0; i < n; i++) players.push({ name: r.str(), zone: r.str(), nodeId: r.str() });
      return { kind: "who", total, players };
    },
    [T.NOTICE]: (r) => ({ kind: "notice", type: r.u8(), text: r.str() }),
    [T.ERROR]: (r) => ({ kind: "error", code: r.u16(), text: r.str() }),
    [T.RESYNC]: () => ({ kind: "resync" }),
    [T.TICKET]: (r) => ({ kind: "ticket", validFor: r.u16(), token: r.str() }),
    [T.REDIRECT]: (r) => ({
      kind: "redirect", host: r.str(), port: r.u16(), websocketPort: r.u16(), token: r.str(),
    }),
  };

  // One received message (an ArrayBuffer) as an object; null for a type
  // this client does not know (a later server may add some).
  function decode(buffer) {
    const view = new DataView(buffer);
    if (buffer.byteLength < 5 || view.getUint32(0) + 4 !== buffer.byteLength) {
      throw new Error(`not one frame: ${buffer.byteLength} bytes`);
    }
    const decoder = decoders[view.getUint8(4)];
    return decoder ? decoder(new Reader(buffer)) : null;
  }

  return { VERSION, T, CHANNEL, KIND, NOTICE, ERRORS, RECOVERABLE, CORRECTIONS, encode, decode };
})();
