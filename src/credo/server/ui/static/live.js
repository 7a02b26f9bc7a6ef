// The job page's live output: the server's Server-Sent Events feed (event "chunk" per chunk of
// output, then "end" with the final state), appended as it arrives. The browser reconnects by
// itself and sends Last-Event-ID, so nothing is shown twice or lost.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const output = document.querySelector("[data-live-output]");
  if (output) {
    const feed = new EventSource(output.dataset.liveOutput);
    feed.addEventListener("chunk", (event) => {
      const chunk = JSON.parse(event.data);
      const span = document.createElement("span");
      span.className = "s-" + chunk.stream;
      span.dataset.stream = chunk.stream;
      span.textContent = chunk.text;
      output.append(span);
    });
    feed.addEventListener("end", (event) => {
      feed.close();
      const state = JSON.parse(event.data).state;
      const badge = document.getElementById("job-state");
      badge.textContent = state;
      badge.className = "state state-" + state.toLowerCase();
      document.getElementById("output-end").hidden = false;
      const stop = document.getElementById("stop");
      if (stop) stop.closest("form").remove();
    });
  }
  for (const toggle of document.querySelectorAll("[data-stream-toggle]")) {
    toggle.addEventListener("change", () => {
      document.body.classList.toggle("hide-" + toggle.dataset.streamToggle, !toggle.checked);
    });
  }
});
