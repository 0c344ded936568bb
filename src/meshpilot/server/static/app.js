// The chat page: posts questions, reads the server-sent events of the answer, renders approvals.
const messages = document.getElementById("messages");
const form = document.getElementById("ask");
const input = document.getElementById("question");
let thread = localStorage.getItem("meshpilot-thread") || newThread();

function newThread() {
  const id = "t" + crypto.getRandomValues(new Uint32Array(2)).join("");
  localStorage.setItem("meshpilot-thread", id);
  return id;
}

function bubble(role, html) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.innerHTML = html || "";
  messages.appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function escapeHtml(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

async function run(url, payload) {
  const box = bubble("assistant", '<div class="tools"></div><div class="body"><em>thinking…</em></div>');
  const tools = box.querySelector(".tools");
  const body = box.querySelector(".body");
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify({ ...payload, thread }) });
  if (!response.ok) {
    const error = await response.json().catch(() => ({ error: response.statusText }));
    body.innerHTML = '<span class="error">' + escapeHtml(error.error) + "</span>";
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let streamed = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const kind = (block.match(/^event: (.*)$/m) || [])[1];
      const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
      if (kind === "tool_call") tools.insertAdjacentHTML("beforeend", "→ " + escapeHtml(data.name) + " ");
      if (kind === "tool_result") tools.insertAdjacentHTML("beforeend", (data.status === "error" ? "✗ " : "✓ "));
      if (kind === "token") { streamed += data.text; body.textContent = streamed; }
      if (kind === "error") body.innerHTML = '<span class="error">' + escapeHtml(data.message) + "</span>";
      if (kind === "answer") showAnswer(box, body, data);
    }
  }
}

function showAnswer(box, body, answer) {
  if (answer.interrupt) {
    const pending = answer.interrupt;
    body.innerHTML = '<div class="approval"><strong>Approval needed: ' + escapeHtml(pending.action) + "</strong><p>" +
      escapeHtml(pending.reason) + "</p><pre>" + escapeHtml(pending.tool + " " + JSON.stringify(pending.args)) +
      '</pre><button class="approve">Approve</button><button class="deny">Deny</button></div>';
    body.querySelector(".approve").onclick = () => { body.querySelector(".approval").remove(); run("/api/approve", { approved: true }); };
    body.querySelector(".deny").onclick = () => { body.querySelector(".approval").remove(); run("/api/approve", { approved: false }); };
    return;
  }
  body.innerHTML = answer.html;
  if (answer.prompts && answer.prompts.length) {
    box.insertAdjacentHTML("beforeend", '<div class="meta">prompts ' + escapeHtml(answer.prompts.join(", ")) + "</div>");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  bubble("user", escapeHtml(text));
  run("/api/chat", { message: text });
});

document.getElementById("new-thread").onclick = () => { thread = newThread(); messages.innerHTML = ""; };

fetch("/api/threads/" + thread).then((r) => r.json()).then((history) => {
  for (const m of history.messages || []) bubble(m.role, m.html);
});
