// The web client's map: what the node shows the player, drawn on a canvas
// each animation frame from the client's state (play.js keeps it): the
// zone's ground and edges, its cells and the 3 x 3 of them the player
// sees, every entity in view (interpolated between ticks), names, chat
// bubbles and a minimap.
"use strict";

const MMOMap = (() => {
  const { KIND } = MMO;

  // The map of ``game`` (play.js's state) on ``canvas``.
  function create(canvas, game) {
    const ctx = canvas.getContext("2d");

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

    return { draw, view, colour, shown };
  }

  return { create };
})();
