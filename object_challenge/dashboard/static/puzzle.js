// The puzzle page: the board from GET /newapi/puzzle/<id>/, pieces dragged with the mouse
// (token on press, move on release), everyone's moves over the SSE stream (fetch, with
// Authorization), catch-up with ?since= after a dropped stream.
"use strict";

(() => {
  const { api, el, notice, sse, sleep } = OC;
  const board = document.getElementById("board");
  const wrap = document.getElementById("board-wrap");
  const banner = document.getElementById("banner");
  const statusBox = document.getElementById("status");
  const puzzleId = board.dataset.puzzleId;
  const base = `/newapi/puzzle/${puzzleId}`;
  let mark = sessionStorage.getItem("oc.mark");
  if (!mark) {
    mark = Math.random().toString(36).slice(2, 12);
    sessionStorage.setItem("oc.mark", mark);
  }

  const pieces = new Map(); // id -> {id, x, y, r, group, immovable, node}
  let info = null;
  let seq = 0;
  let scale = 1;
  let drag = null;
  let streamAbort = null;
  let paused = false;
  let resumed = null;
  let catching = null;

  function setStatus(text, state) {
    statusBox.textContent = text;
    board.dataset.stream = state;
  }

  function place(piece) {
    const node = piece.node;
    node.style.left = `${piece.x * scale}px`;
    node.style.top = `${piece.y * scale}px`;
    node.dataset.x = String(piece.x);
    node.dataset.y = String(piece.y);
    node.classList.toggle("fixed", Boolean(piece.immovable));
  }

  function draw(data) {
    info = data;
    seq = data.seq;
    board.dataset.seq = String(seq);
    scale = Math.min(1, (wrap.clientWidth - 4) / data.table_width) || 1;
    board.style.width = `${data.table_width * scale}px`;
    board.style.height = `${data.table_height * scale}px`;
    board.replaceChildren();
    pieces.clear();
    for (const p of data.pieces) {
      const node = el("div", { class: "piece", "data-id": String(p.id), title: `piece ${p.id}` }, String(p.id));
      node.style.width = `${data.piece_width * scale}px`;
      node.style.height = `${data.piece_height * scale}px`;
      node.style.lineHeight = `${data.piece_height * scale}px`;
      const piece = Object.assign({}, p, { node });
      pieces.set(p.id, piece);
      place(piece);
      board.appendChild(node);
    }
    complete(data.status === "complete");
  }

  function complete(done) {
    banner.hidden = !done;
    board.classList.toggle("complete", done);
  }

  function apply(update) {
    if (update.seq <= seq) return; // seen already
    if (update.seq > seq + 1) {
      catchUp(); // a gap: read every update since the last one seen, in order
      return;
    }
    for (const p of update.pieces || []) {
      const piece = pieces.get(p.id);
      if (!piece) continue;
      Object.assign(piece, { x: p.x, y: p.y, r: p.r, group: p.group, immovable: p.immovable });
      if (!(drag && drag.members.includes(piece))) place(piece);
    }
    seq = update.seq;
    board.dataset.seq = String(seq);
    if (update.status === "complete") complete(true);
  }

  function catchUp() {
    if (catching) return catching;
    catching = (async () => {
      try {
        const { data } = await api(`${base}/updates/?since=${seq}`);
        if (data.seq < seq) {
          // Redis lost the board and reloaded it: start again from the board itself
          return draw((await api(`${base}/`)).data);
        }
        const updates = data.updates.filter((u) => u.seq > seq).sort((a, b) => a.seq - b.seq);
        if (updates.length && updates[0].seq > seq + 1) {
          return draw((await api(`${base}/`)).data); // older than what is retained
        }
        for (const u of updates) apply(u);
      } finally {
        catching = null;
      }
    })();
    return catching;
  }

  // -- the stream: reconnect with back-off, catch up once the stream is open again -----
  async function follow() {
    let delay = 300;
    for (;;) {
      if (paused) await resumed;
      streamAbort = new AbortController();
      try {
        await sse(`${base}/updates/`, {
          signal: streamAbort.signal,
          onOpen: () => {
            setStatus("live", "live");
            delay = 300;
            catchUp().catch(() => {});
          },
          onEvent: (msg) => {
            try {
              apply(JSON.parse(msg.data));
            } catch (_e) {
              /* not an update */
            }
          },
        });
      } catch (err) {
        if (err.status === 401 || err.status === 403) {
          setStatus("not allowed", "down");
          return notice(err.message);
        }
      }
      setStatus("reconnecting…", "down");
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  // -- dragging --------------------------------------------------------------------
  function refuse(piece, message) {
    const tag = el("span", { class: "refusal-tag" }, message);
    piece.node.appendChild(tag);
    piece.node.classList.add("refused");
    setTimeout(() => {
      tag.remove();
      piece.node.classList.remove("refused");
    }, 2500);
  }

  board.addEventListener("mousedown", (event) => {
    const node = event.target.closest(".piece");
    if (!node || event.button !== 0) return;
    const piece = pieces.get(Number(node.dataset.id));
    event.preventDefault();
    if (piece.immovable) return refuse(piece, "fixed in place");
    const members = [...pieces.values()].filter((p) => p.group === piece.group);
    const grant = api(`${base}/piece/${piece.id}/token/?mark=${encodeURIComponent(mark)}`);
    grant.catch(() => {}); // looked at on release
    drag = { piece, members, grant, startX: event.clientX, startY: event.clientY, dx: 0, dy: 0 };
    for (const m of members) m.node.classList.add("dragging");
  });

  document.addEventListener("mousemove", (event) => {
    if (!drag) return;
    drag.dx = (event.clientX - drag.startX) / scale;
    drag.dy = (event.clientY - drag.startY) / scale;
    for (const m of drag.members) {
      m.node.style.left = `${(m.x + drag.dx) * scale}px`;
      m.node.style.top = `${(m.y + drag.dy) * scale}px`;
    }
  });

  document.addEventListener("mouseup", async () => {
    if (!drag) return;
    const { piece, members, grant, dx, dy } = drag;
    drag = null;
    const back = () => members.forEach((m) => place(m));
    for (const m of members) m.node.classList.remove("dragging");
    if (Math.abs(dx) < 1 && Math.abs(dy) < 1) return back();
    try {
      const { data } = await grant;
      const answer = await api(`${base}/piece/${piece.id}/move/`, {
        method: "PATCH",
        body: { token: data.token, x: Math.round(piece.x + dx), y: Math.round(piece.y + dy), r: piece.r },
      });
      const moved = Number(answer.headers.get("X-Puzzle-Seq") || 0);
      // the stream brings the result (snapped, clamped); if it is down, catch up
      setTimeout(() => {
        if (moved > seq) catchUp().catch(() => {});
      }, 1000);
    } catch (err) {
      back();
      const why = { piece_locked: "locked by another player", move_rate_exceeded: "too many moves: wait" };
      refuse(piece, why[err.code] || err.message);
    }
  });

  window.addEventListener("resize", () => {
    if (info) catchUp().then(() => api(`${base}/`).then(({ data }) => draw(data)));
  });

  // test and debugging hooks: drop the stream (and hold it down until resume)
  window.ocPuzzle = {
    pause() {
      paused = true;
      resumed = new Promise((resolve) => {
        window.ocPuzzle.resume = () => {
          paused = false;
          resolve();
        };
      });
      if (streamAbort) streamAbort.abort();
    },
    resume() {},
    seq: () => seq,
  };

  OC.start(async () => {
    try {
      draw((await api(`${base}/`)).data);
    } catch (err) {
      return notice(`Cannot load puzzle ${puzzleId}: ${err.message}`);
    }
    follow();
  });
})();
