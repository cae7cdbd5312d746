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
  const ctx = canvas.getContext("2d");

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
    game.lastError = null;
    setStatus("connecting", "connecting");
    $("login").disabled = true;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    game.ws = ws;
    ws.onopen = () => {
      send(encode.hello("mmo-web/1"));
      send(encode.login(name, password));
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
      case "welcome":
        $("fact-node").textContent = msg.nodeId;
        break;
      case "enterWorld":
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

  // -- drawing ------------------------------------------------------------------------

  // A colour per name (the same in every browser); yours is the accent.
  function colour(name) {
    if (name === game.name) return "#7cc4ff";
    let h = 0x811c9dc5; // FNV-1a, spread over the hues by the golden ratio
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
    // Any hue but the blues around your own (175 to 235 degrees).
    const hue = Math.floor(((h * 0.618033988749895) % 1) * 300);
    return `hsl(${hue < 175 ? hue : hue + 60}, 72%, 68%)`;
  }

  function shown(e, now) {
    const period = game.me ? 1000 / game.me.tickHz : 100;
    const t = Math.min(1, (now - e.at) / period);
    return [e.fromX + (e.x - e.fromX) * t, e.fromY + (e.y - e.fromY) * t];
  }

  // Your cell as the server sees it: it changes only past an edge by the
  // node's hysteresis (section 7; 10 units by default, not sent).
  const HYSTERESIS = 10;

  function myCell() {
    const me = game.me;
    const aoi = me.aoi;
    const last = [Math.ceil(me.zoneWidth / aoi) - 1, Math.ceil(me.zoneHeight / aoi) - 1];
    const at = [Math.min(Math.floor(me.x / aoi), last[0]), Math.min(Math.floor(me.y / aoi), last[1])];
    const cell = game.cell;
    if (!cell || cell.zone !== me.zone) {
      game.cell = { zone: me.zone, c: at };
      return at;
    }
    const pos = [me.x, me.y];
    for (let k = 0; k < 2; k++) {
      const c = cell.c[k];
      if (pos[k] < c * aoi - HYSTERESIS || pos[k] > (c + 1) * aoi + HYSTERESIS) cell.c[k] = at[k];
    }
    return cell.c;
  }

  function fitCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr);
    const h = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    return dpr;
  }

  function view() {
    const me = game.me;
    const span = (me ? me.aoi : 100) * 3.6 / game.zoom;
    const scale = Math.min(canvas.width, canvas.height) / span;
    return { scale, cx: me ? me.x : 0, cy: me ? me.y : 0, w: canvas.width, h: canvas.height };
  }

  function draw(now) {
    const dpr = fitCanvas();
    const { width: W, height: H } = canvas;
    ctx.fillStyle = "#0b1020";
    ctx.fillRect(0, 0, W, H);
    const me = game.me;
    if (!me) return;
    const v = view();
    const sx = (x) => (x - v.cx) * v.scale + W / 2;
    const sy = (y) => (y - v.cy) * v.scale + H / 2;
    drawGround(v, sx, sy, dpr);
    drawTarget(sx, sy, dpr, now);
    const drawn = [];
    for (const e of game.entities.values()) {
      if (e.id === me.id) continue;
      const [x, y] = shown(e, now);
      drawn.push({ e, x: sx(x), y: sy(y) });
    }
    drawn.push({ e: { id: me.id, name: game.name, type: KIND.PLAYER, self: true }, x: sx(me.x), y: sy(me.y) });
    drawn.sort((a, b) => a.y - b.y);
    for (const d of drawn) drawEntity(d, dpr);
    // Names over every body, yours last (on top).
    drawn.sort((a, b) => (a.e.self ? 1 : 0) - (b.e.self ? 1 : 0) || a.y - b.y);
    for (const d of drawn) drawName(d, dpr);
    for (const d of drawn) drawBubble(d, dpr, now);
    drawMinimap(dpr, now);
  }

  function drawGround(v, sx, sy, dpr) {
    const me = game.me;
    const aoi = me.aoi;
    const x0 = sx(0);
    const y0 = sy(0);
    const x1 = sx(me.zoneWidth);
    const y1 = sy(me.zoneHeight);
    // Outside the zone: dark, hatched.
    ctx.save();
    ctx.strokeStyle = "rgba(255,255,255,0.035)";
    ctx.lineWidth = 6 * dpr;
    for (let k = -canvas.height; k < canvas.width + canvas.height; k += 22 * dpr) {
      ctx.beginPath();
      ctx.moveTo(k, 0);
      ctx.lineTo(k - canvas.height, canvas.height);
      ctx.stroke();
    }
    // The zone's ground.
    const ground = ctx.createRadialGradient(sx(me.x), sy(me.y), 0, sx(me.x), sy(me.y), aoi * 2.4 * v.scale);
    ground.addColorStop(0, "#1c2a48");
    ground.addColorStop(1, "#131c33");
    ctx.fillStyle = ground;
    ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    // Cells, and the 3x3 of them you see.
    ctx.beginPath();
    ctx.rect(x0, y0, x1 - x0, y1 - y0);
    ctx.clip();
    ctx.strokeStyle = "rgba(140,170,255,0.09)";
    ctx.lineWidth = dpr;
    const first = (c, s) => Math.max(0, Math.floor((c - s / 2 / v.scale) / aoi));
    const last = (c, s, size) => Math.min(Math.ceil(size / aoi), Math.ceil((c + s / 2 / v.scale) / aoi));
    for (let i = first(v.cx, canvas.width); i <= last(v.cx, canvas.width, me.zoneWidth); i++) {
      ctx.beginPath();
      ctx.moveTo(sx(i * aoi), y0);
      ctx.lineTo(sx(i * aoi), y1);
      ctx.stroke();
    }
    for (let j = first(v.cy, canvas.height); j <= last(v.cy, canvas.height, me.zoneHeight); j++) {
      ctx.beginPath();
      ctx.moveTo(x0, sy(j * aoi));
      ctx.lineTo(x1, sy(j * aoi));
      ctx.stroke();
    }
    const [cx, cy] = myCell();
    ctx.fillStyle = "rgba(124,196,255,0.05)";
    ctx.strokeStyle = "rgba(124,196,255,0.28)";
    ctx.setLineDash([6 * dpr, 6 * dpr]);
    const ax = sx((cx - 1) * aoi);
    const ay = sy((cy - 1) * aoi);
    ctx.fillRect(ax, ay, 3 * aoi * v.scale, 3 * aoi * v.scale);
    ctx.strokeRect(ax, ay, 3 * aoi * v.scale, 3 * aoi * v.scale);
    ctx.restore();
    // The zone's edges.
    ctx.strokeStyle = "#f3b45b";
    ctx.lineWidth = 2.5 * dpr;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillStyle = "rgba(243,180,91,0.85)";
    ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(`${me.zone} · ${me.zoneWidth}×${me.zoneHeight}`, Math.max(x0, 8 * dpr) + 4 * dpr, Math.max(y0, 22 * dpr) - 4 * dpr);
  }

  function drawTarget(sx, sy, dpr, now) {
    const t = game.target;
    if (!t) return;
    const r = (6 + 3 * Math.sin(now / 180)) * dpr;
    ctx.strokeStyle = "rgba(124,196,255,0.9)";
    ctx.lineWidth = 2 * dpr;
    ctx.beginPath();
    ctx.arc(sx(t.x), sy(t.y), r, 0, Math.PI * 2);
    ctx.stroke();
  }

  function drawEntity({ e, x, y }, dpr) {
    const npc = e.type !== KIND.PLAYER;
    const r = (e.self ? 9 : npc ? 6.5 : 8) * dpr;
    ctx.save();
    ctx.shadowColor = "rgba(0,0,0,0.55)";
    ctx.shadowBlur = 6 * dpr;
    ctx.beginPath();
    if (npc) {
      ctx.moveTo(x, y - r);
      ctx.lineTo(x + r, y);
      ctx.lineTo(x, y + r);
      ctx.lineTo(x - r, y);
      ctx.closePath();
      ctx.fillStyle = "#f3b45b";
    } else {
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fillStyle = e.self ? "#7cc4ff" : colour(e.name);
    }
    ctx.fill();
    ctx.restore();
    if (e.self) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2 * dpr;
      ctx.beginPath();
      ctx.arc(x, y, r + 3 * dpr, 0, Math.PI * 2);
      ctx.stroke();
    }
  }

  function drawName({ e, x, y }, dpr) {
    const npc = e.type !== KIND.PLAYER;
    const r = (e.self ? 9 : npc ? 6.5 : 8) * dpr;
    ctx.font = `${e.self ? "600 " : ""}${11.5 * dpr}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.lineWidth = 3 * dpr;
    ctx.strokeStyle = "rgba(8,12,24,0.85)";
    ctx.strokeText(e.name, x, y + r + 4 * dpr);
    ctx.fillStyle = npc ? "#e8c48c" : e.self ? "#ffffff" : "#dfe6f5";
    ctx.fillText(e.name, x, y + r + 4 * dpr);
  }

  function drawBubble({ e, x, y }, dpr, now) {
    const b = game.bubbles.get(e.name);
    if (!b) return;
    if (b.until < now) {
      game.bubbles.delete(e.name);
      return;
    }
    const textValue = b.text.length > 48 ? `${b.text.slice(0, 47)}…` : b.text;
    ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    const w = ctx.measureText(textValue).width + 16 * dpr;
    const h = 22 * dpr;
    const bx = x - w / 2;
    const by = y - 18 * dpr - h;
    ctx.globalAlpha = Math.min(1, (b.until - now) / 600);
    ctx.fillStyle = "rgba(240,244,255,0.95)";
    ctx.beginPath();
    ctx.roundRect(bx, by, w, h, 8 * dpr);
    ctx.moveTo(x - 5 * dpr, by + h);
    ctx.lineTo(x, by + h + 6 * dpr);
    ctx.lineTo(x + 5 * dpr, by + h);
    ctx.fill();
    ctx.fillStyle = "#18223b";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(textValue, x, by + h / 2);
    ctx.globalAlpha = 1;
  }

  function drawMinimap(dpr, now) {
    const me = game.me;
    const size = 150 * dpr;
    const k = size / Math.max(me.zoneWidth, me.zoneHeight);
    const w = me.zoneWidth * k;
    const h = me.zoneHeight * k;
    const x0 = canvas.width - w - 14 * dpr;
    const y0 = 14 * dpr;
    ctx.fillStyle = "rgba(10,14,28,0.78)";
    ctx.strokeStyle = "rgba(243,180,91,0.7)";
    ctx.lineWidth = dpr;
    ctx.fillRect(x0, y0, w, h);
    ctx.strokeRect(x0, y0, w, h);
    for (const e of game.entities.values()) {
      if (e.id === me.id) continue;
      const [x, y] = shown(e, now);
      ctx.fillStyle = e.type === KIND.PLAYER ? colour(e.name) : "#f3b45b";
      ctx.fillRect(x0 + x * k - 1.5 * dpr, y0 + y * k - 1.5 * dpr, 3 * dpr, 3 * dpr);
    }
    // The area you see, within the zone.
    const aoi = me.aoi;
    const [cx, cy] = myCell();
    const ax = Math.max(0, (cx - 1) * aoi);
    const ay = Math.max(0, (cy - 1) * aoi);
    const bx = Math.min(me.zoneWidth, (cx + 2) * aoi);
    const by = Math.min(me.zoneHeight, (cy + 2) * aoi);
    ctx.strokeStyle = "rgba(124,196,255,0.8)";
    ctx.strokeRect(x0 + ax * k, y0 + ay * k, (bx - ax) * k, (by - ay) * k);
    ctx.fillStyle = "#ffffff";
    ctx.beginPath();
    ctx.arc(x0 + me.x * k, y0 + me.y * k, 2.5 * dpr, 0, Math.PI * 2);
    ctx.fill();
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
