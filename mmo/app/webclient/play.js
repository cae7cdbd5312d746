// The mmo web client: log in, walk a canvas map of what the node shows
// you, chat, see who is online. It speaks docs/PROTOCOL.md over the
// WebSocket that config.json names; protocol.js holds the codec.
"use strict";

(() => {
  const { T, CHANNEL, KIND, NOTICE, ERRORS, RECOVERABLE, CORRECTIONS, encode, decode } = MMO;
  const $ = (id) => document.getElementById(id);
  // Walking speed, under the node's default max_speed (50 units a second).
  const SPEED = 45;
  const PING_EVERY = 5000;
  // Reconnections in a row (Redirects, drops) before the player is asked to log in.
  const MAX_COMEBACKS = 20;
  const WHO_EVERY = 5000;
  const CHAT_LINES = 200;
  const BUBBLE_MS = 6000;

  const game = {
    state: "offline", // offline, connecting, playing, closed
    config: null,
    ws: null,
    name: "",
    me: null, // {id, x, y, zone, zoneWidth, zoneHeight, aoi, tickHz, nodeId}
    entities: new Map(), // id -> {id, name, type, x, y, fromX, fromY, at}
    chat: [], // {channel, sender, text}
    who: [],
    whoTotal: 0,
    rtt: null,
    lastError: null,
    seq: 0,
    sent: { x: 0, y: 0, at: 0 },
    keys: new Set(),
    target: null,
    speed: SPEED,
    zoom: 1,
    bubbles: new Map(), // sender name -> {text, until}
    lastFrame: 0,
    lastPing: 0,
    lastWho: 0,
    lastCorrection: 0,
    whoStale: false, // a player came into view whom the list lacks
    cell: null, // {zone, c: [cx, cy]}: your cell, with the server's hysteresis
  };
  // For the curious (and the browser tests): the client's state.
  window.mmoGame = game;

  const canvas = $("map");
  const { draw, view, colour, shown } = MMOMap.create(canvas, game);

  // -- connection ---------------------------------------------------------------

  function send(frame) {
    if (game.ws && game.ws.readyState === WebSocket.OPEN) game.ws.send(frame);
  }

  function setStatus(state, label) {
    game.state = state;
    const el = $("status");
    el.className = `status ${state === "playing" ? "online" : state === "connecting" ? "connecting" : "offline"}`;
    el.textContent = label;
  }

  function connect(name, password) {
    const url = game.config && game.config.websocket;
    if (!url) {
      loginError("This node takes no browser players: start it with --websocket tcp:4080.");
      return;
    }
    game.name = name;
    game.token = null;
    game.tries = 0;
    $("login").disabled = true;
    open(url, () => encode.login(name, password));
  }

  // After a Redirect, or a connection lost in play: the same player, on
  // the node named (or the same one), with the newest resume token.
  function comeBack(url) {
    const token = game.token;
    game.tries += 1;
    open(url, () => encode.resume(token));
  }

  function open(url, first) {
    game.lastError = null;
    game.redirect = null;
    game.url = url;
    setStatus("connecting", "connecting");
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    game.ws = ws;
    ws.onopen = () => {
      send(encode.hello("mmo-web/1"));
      send(first());
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") return;
      let msg;
      try {
        msg = decode(event.data);
      } catch (e) {
        line(CHANNEL.SYSTEM, "", `could not read the server: ${e.message}`, "error");
        ws.close();
        return;
      }
      if (msg) handle(msg);
      keepAlive(performance.now());
    };
    ws.onclose = (event) => closed(ws, event);
  }

  function closed(ws, event) {
    if (ws !== game.ws) return;
    const wasPlaying = game.state === "playing";
    game.ws = null;
    const r = game.redirect;
    if (r && r.websocketPort && game.tries < MAX_COMEBACKS) {
      // Sent to the node that owns where we stand: go there with the token.
      const here = new URL(game.url);
      comeBack(`${here.protocol}//${r.host}:${r.websocketPort}${here.pathname}`);
      return;
    }
    if (game.token && !game.lastError && (wasPlaying || game.tries) && game.tries < MAX_COMEBACKS) {
      // Lost (the node restarting?): come back with the token, shortly.
      setStatus("connecting", "reconnecting");
      setTimeout(() => comeBack(game.url), 500);
      return;
    }
    game.keys.clear();
    game.target = null;
    setStatus("closed", "offline");
    $("chat-input").disabled = true;
    $("zone-select").disabled = true;
    const why = game.lastError
      ? `${ERRORS[game.lastError.code] || `error ${game.lastError.code}`}: ${game.lastError.text}`
      : wasPlaying ? `The connection closed (${event.code}).` : "Could not reach the node's WebSocket.";
    if (wasPlaying) line(CHANNEL.SYSTEM, "", `disconnected: ${why}`, "error");
    loginError(why);
    $("login").disabled = false;
    $("login").textContent = "Enter again";
    $("login-overlay").classList.remove("hidden");
  }

  function keepAlive(now) {
    // A Ping keeps the session from idling out and measures the round trip;
    // checked on arrivals too, where timers of a hidden tab run late.
    if (game.state !== "playing") return;
    if (now - game.lastPing >= PING_EVERY) {
      game.lastPing = now;
      send(encode.ping((now & 0x7fffffff) >>> 0, now));
    }
    if (now - game.lastWho >= WHO_EVERY || (game.whoStale && now - game.lastWho >= 1000)) {
      game.whoStale = false;
      game.lastWho = now;
      send(encode.who());
    }
  }

  // -- what arrives ------------------------------------------------------------------

  function handle(msg) {
    const now = performance.now();
    switch (msg.kind) {
      case "ticket":
        game.token = msg.token;
        break;
      case "redirect":
        game.token = msg.token;
        game.redirect = msg;
        break;
      case "welcome":
        $("fact-node").textContent = msg.nodeId;
        break;
      case "enterWorld":
        game.tries = 0;
        enterWorld(msg, now);
        break;
      case "enter":
        for (const e of msg.entities) {
          game.entities.set(e.id, { ...e, fromX: e.x, fromY: e.y, at: now });
          if (e.type === KIND.PLAYER && !game.who.some((p) => p.name === e.name)) {
            game.whoStale = true;
          }
        }
        break;
      case "leave":
        for (const id of msg.ids) game.entities.delete(id);
        break;
      case "moves":
        for (const mv of msg.moves) {
          const e = game.entities.get(mv.id);
          if (!e) continue;
          const [x, y] = shown(e, now);
          e.fromX = x;
          e.fromY = y;
          e.x = mv.x;
          e.y = mv.y;
          e.at = now;
        }
        break;
      case "resync":
        game.entities.clear();
        break;
      case "correction":
        corrected(msg, now);
        break;
      case "pong":
        game.rtt = now - msg.clientTime;
        break;
      case "chat":
        line(msg.channel, msg.sender, msg.text);
        if (msg.channel === CHANNEL.SAY && msg.sender) {
          game.bubbles.set(msg.sender, { text: msg.text, until: now + BUBBLE_MS });
        }
        break;
      case "who":
        game.who = msg.players;
        game.whoTotal = msg.total;
        showWho();
        break;
      case "notice":
        line(CHANNEL.SYSTEM, "", msg.text, msg.type === NOTICE.SHUTDOWN ? "error" : "system");
        break;
      case "error":
        if (!RECOVERABLE.has(msg.code)) game.lastError = msg;
        line(CHANNEL.SYSTEM, "", `${ERRORS[msg.code] || msg.code}: ${msg.text}`, "error");
        break;
      default:
        break;
    }
  }

  function enterWorld(msg, now) {
    const first = game.state !== "playing";
    game.me = {
      id: msg.entityId, x: msg.x, y: msg.y, zone: msg.zone, zoneWidth: msg.zoneWidth,
      zoneHeight: msg.zoneHeight, aoi: msg.aoi, tickHz: Math.max(1, msg.tickHz), nodeId: msg.nodeId,
    };
    game.sent = { x: msg.x, y: msg.y, at: now };
    game.target = null;
    game.cell = null;
    game.entities.clear();
    setStatus("playing", "online");
    $("fact-name").textContent = game.name;
    $("fact-node").textContent = msg.nodeId;
    $("zone-select").value = msg.zone;
    $("zone-select").disabled = false;
    $("chat-input").disabled = false;
    if (first) {
      $("login-overlay").classList.add("hidden");
      $("login").disabled = false;
      try { localStorage.setItem("mmo.name", game.name); } catch (e) { /* private mode */ }
      line(CHANNEL.SYSTEM, "", `Welcome, ${game.name}: you are in ${msg.zone} on node ${msg.nodeId}.`);
      game.lastPing = game.lastWho = -Infinity;
      keepAlive(now);
      canvas.focus();
    } else {
      line(CHANNEL.SYSTEM, "", `You are now in ${msg.zone}.`);
    }
  }

  function corrected(msg, now) {
    const me = game.me;
    if (!me) return;
    me.x = msg.x;
    me.y = msg.y;
    game.sent = { x: msg.x, y: msg.y, at: now };
    game.target = null;
    if (msg.reason === 1) {
      // Faster than this node allows: walk a little slower from now on.
      game.speed = Math.max(10, game.speed * 0.85);
    }
    if (now - game.lastCorrection > 3000) {
      line(CHANNEL.SYSTEM, "", `The server put you back (${CORRECTIONS[msg.reason] || msg.reason}).`);
    }
    game.lastCorrection = now;
  }

  // -- the side panel ------------------------------------------------------------

  function line(channel, sender, textValue, cls) {
    game.chat.push({ channel, sender, text: textValue });
    if (game.chat.length > CHAT_LINES) game.chat.shift();
    const log = $("chat-log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 30;
    const li = document.createElement("li");
    li.className = cls || (channel === CHANNEL.SYSTEM ? "system" : `ch-${channel}`);
    if (channel !== CHANNEL.SYSTEM) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = ["say", "zone", "whisper", "global"][channel] || `#${channel}`;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = sender;
      who.style.color = channel === CHANNEL.WHISPER ? "" : colour(sender);
      li.append(tag, who, document.createTextNode(`: ${textValue}`));
    } else {
      li.textContent = textValue;
    }
    log.append(li);
    while (log.children.length > CHAT_LINES) log.firstChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function showWho() {
    const list = $("who-list");
    list.replaceChildren();
    for (const p of game.who) {
      const li = document.createElement("li");
      if (p.name === game.name) li.className = "me";
      const name = document.createElement("span");
      name.textContent = p.name;
      const where = document.createElement("span");
      where.className = "where";
      where.textContent = `${p.zone} · ${p.nodeId}`;
      li.append(name, where);
      li.title = `whisper to ${p.name}`;
      li.onclick = () => {
        const input = $("chat-input");
        input.value = `@${p.name} `;
        input.focus();
      };
      list.append(li);
    }
    $("who-total").textContent = `(${game.whoTotal})`;
  }

  function showFacts(now) {
    const me = game.me;
    if (!me) return;
    $("fact-position").textContent = `${me.x.toFixed(1)}, ${me.y.toFixed(1)}`;
    let players = 0;
    let npcs = 0;
    for (const e of game.entities.values()) {
      if (e.type === KIND.PLAYER) players++;
      else npcs++;
    }
    $("fact-view").textContent = `${players} player${players === 1 ? "" : "s"}, ${npcs} NPC${npcs === 1 ? "" : "s"}`;
    $("fact-ping").textContent = game.rtt === null ? "–" : `${Math.round(game.rtt)} ms`;
  }

  // -- walking ------------------------------------------------------------------------

  const KEYS = {
    ArrowLeft: [-1, 0], KeyA: [-1, 0], ArrowRight: [1, 0], KeyD: [1, 0],
    ArrowUp: [0, -1], KeyW: [0, -1], ArrowDown: [0, 1], KeyS: [0, 1],
  };

  function walk(now, dt) {
    const me = game.me;
    if (!me || game.state !== "playing") return;
    let dx = 0;
    let dy = 0;
    for (const code of game.keys) {
      dx += KEYS[code][0];
      dy += KEYS[code][1];
    }
    const step = game.speed * dt;
    if (dx || dy) {
      game.target = null;
      const d = Math.hypot(dx, dy);
      me.x += (dx / d) * step;
      me.y += (dy / d) * step;
    } else if (game.target) {
      const tx = game.target.x - me.x;
      const ty = game.target.y - me.y;
      const left = Math.hypot(tx, ty);
      if (left <= step) {
        me.x = game.target.x;
        me.y = game.target.y;
        game.target = null;
      } else {
        me.x += (tx / left) * step;
        me.y += (ty / left) * step;
      }
    }
    me.x = Math.min(Math.max(me.x, 0), me.zoneWidth);
    me.y = Math.min(Math.max(me.y, 0), me.zoneHeight);
    // At most one Move per tick, and the last position once we stop.
    const moved = me.x !== game.sent.x || me.y !== game.sent.y;
    if (moved && now - game.sent.at >= 1000 / me.tickHz) {
      game.seq = (game.seq + 1) >>> 0;
      send(encode.move(game.seq, me.x, me.y));
      game.sent = { x: me.x, y: me.y, at: now };
    }
    if (now - game.lastCorrection > 10000 && game.speed < SPEED) {
      game.speed = Math.min(SPEED, game.speed * 1.05);
      game.lastCorrection = now;
    }
  }

  function frame(now) {
    const dt = Math.min(Math.max((now - (game.lastFrame || now)) / 1000, 0), 0.25);
    game.lastFrame = now;
    walk(now, dt);
    draw(now);
    showFacts(now);
    requestAnimationFrame(frame);
  }

  // -- input ---------------------------------------------------------------------------

  function typing() {
    const el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT");
  }

  window.addEventListener("keydown", (event) => {
    if (game.state !== "playing" || typing()) return;
    if (KEYS[event.code]) {
      game.keys.add(event.code);
      event.preventDefault();
    } else if (event.key === "Enter") {
      $("chat-input").focus();
      event.preventDefault();
    }
  });
  window.addEventListener("keyup", (event) => game.keys.delete(event.code));
  window.addEventListener("blur", () => game.keys.clear());

  canvas.addEventListener("mousedown", (event) => {
    const me = game.me;
    if (!me || game.state !== "playing") return;
    const rect = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const v = view();
    const x = v.cx + ((event.clientX - rect.left) * dpr - v.w / 2) / v.scale;
    const y = v.cy + ((event.clientY - rect.top) * dpr - v.h / 2) / v.scale;
    game.target = {
      x: Math.min(Math.max(x, 0), me.zoneWidth),
      y: Math.min(Math.max(y, 0), me.zoneHeight),
    };
    canvas.focus();
    event.preventDefault();
  });
  canvas.addEventListener("wheel", (event) => {
    game.zoom = Math.min(2.5, Math.max(0.4, game.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1)));
    event.preventDefault();
  }, { passive: false });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const textValue = input.value.trim();
    input.value = "";
    canvas.focus();
    if (!textValue || game.state !== "playing") return;
    const whisper = /^@(\S+)\s+(.+)$/.exec(textValue);
    if (whisper) {
      send(encode.chat(CHANNEL.WHISPER, whisper[2], whisper[1]));
    } else {
      send(encode.chat(Number($("chat-channel").value), textValue));
    }
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Escape") canvas.focus();
    if (event.key === "Enter") {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });

  $("who-button").addEventListener("click", () => {
    game.lastWho = performance.now();
    send(encode.who());
  });
  $("zone-select").addEventListener("change", (event) => {
    send(encode.changeZone(event.target.value));
    canvas.focus();
  });

  function loginError(textValue) {
    $("login-error").textContent = textValue;
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loginError("");
    if (game.ws) game.ws.close();
    connect($("name").value.trim(), $("password").value);
  });
  window.addEventListener("beforeunload", () => send(encode.bye()));

  // -- start ---------------------------------------------------------------------------

  async function start() {
    try {
      const name = localStorage.getItem("mmo.name");
      if (name) $("name").value = name;
    } catch (e) { /* private mode */ }
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      game.config = await response.json();
    } catch (e) {
      loginError("Could not load config.json from the node.");
      return;
    }
    const select = $("zone-select");
    for (const zone of game.config.zones || []) {
      const option = document.createElement("option");
      option.value = option.textContent = zone;
      select.append(option);
    }
    if (!game.config.websocket) {
      loginError("This node takes no browser players: start it with --websocket tcp:4080.");
    }
    $("name").focus();
  }

  start();
  requestAnimationFrame(frame);
})();
