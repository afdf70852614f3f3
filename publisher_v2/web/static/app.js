// publisher_v2 page. Every value from the server reaches the DOM through textContent or a checked attribute,
// never through HTML parsing: filenames and captions are data, not markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  // `published`: the shown image was published by this page, so Publish stays off until another image shows.
  const state = { filename: null, admin: false, busy: false, published: false, platforms: [] };

  function updateButtons() {
    document.querySelectorAll("[data-action]").forEach((button) => {
      button.disabled = state.busy;
    });
    $("analyze-button").disabled = state.busy || !state.filename || state.published;
    const publish = $("publish-button");
    publish.disabled = state.busy || !state.filename || state.published;
    publish.textContent = state.published ? "Published" : "Publish";
  }

  function setBusy(busy, button) {
    state.busy = busy;
    document.querySelectorAll("[aria-busy]").forEach((element) => element.removeAttribute("aria-busy"));
    if (busy && button) button.setAttribute("aria-busy", "true");
    updateButtons();
  }

  // The one-line state of the last action, next to the buttons (the activity log keeps the history).
  function setStatus(text, isError) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function platformList() {
    return state.platforms.length ? state.platforms.join(", ") : "every enabled platform";
  }

  function log(text, isError) {
    const item = document.createElement("li");
    const stamp = document.createElement("time");
    stamp.textContent = new Date().toLocaleTimeString();
    item.appendChild(stamp);
    item.appendChild(document.createTextNode(text));
    if (isError) item.classList.add("error");
    const list = $("activity");
    list.insertBefore(item, list.firstChild);
    while (list.childNodes.length > 50) list.removeChild(list.lastChild);
  }

  // Only same-origin paths and https links may become an image source.
  function safeImageUrl(url) {
    if (typeof url !== "string") return null;
    if (url.startsWith("/") && !url.startsWith("//")) return url;
    try {
      return new URL(url).protocol === "https:" ? url : null;
    } catch (e) {
      return null;
    }
  }

  async function request(method, path, body) {
    const options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data: data || {} };
  }

  // The server's own message ("This image was already posted …"), not "HTTP 409: …"; the status code only
  // when the server sent no message (a proxy's error page, a network failure).
  function describeError(result) {
    if (result.data && typeof result.data.error === "string" && result.data.error) return result.data.error;
    return "request failed (HTTP " + result.status + ")";
  }

  // Runs one action at a time with every button disabled; a thrown error is logged, never left hanging.
  async function run(label, action, button) {
    if (state.busy) return;
    setBusy(true, button);
    try {
      await action();
    } catch (e) {
      const text = label + " failed: " + (e && e.message ? e.message : String(e));
      log(text, true);
      setStatus(text, true);
    } finally {
      setBusy(false);
    }
  }

  function showAdmin(admin, configured) {
    state.admin = admin;
    const badge = $("admin-state");
    badge.textContent = admin ? "admin" : configured === false ? "visitor (admin disabled)" : "visitor";
    badge.classList.toggle("is-admin", admin);
    $("login-form").hidden = admin || configured === false;
    $("logout-button").hidden = !admin;
    document.querySelectorAll("[data-admin]").forEach((element) => {
      element.hidden = !admin;
    });
  }

  function showImage(data) {
    state.filename = typeof data.filename === "string" ? data.filename : null;
    state.published = false;
    $("filename").textContent = state.filename || "";
    $("caption").textContent = typeof data.caption === "string" ? data.caption : "(no caption yet)";
    $("sd-caption").textContent = typeof data.sd_caption === "string" ? "SD: " + data.sd_caption : "";
    const image = $("image");
    const source = safeImageUrl(data.temp_url);
    if (source) {
      image.setAttribute("src", source);
      image.setAttribute("alt", state.filename || "");
      image.hidden = false;
    } else {
      image.removeAttribute("src");
      image.hidden = true;
    }
  }

  async function loadStatus() {
    const result = await request("GET", "/api/admin/status");
    if (!result.ok) return;
    const platforms = Array.isArray(result.data.platforms) ? result.data.platforms : [];
    state.platforms = platforms.filter((name) => typeof name === "string");
    showAdmin(result.data.admin === true, result.data.configured !== false);
  }

  // `done`: the outcome of the action that asked for the next image (a publish); the status line keeps it.
  async function nextImage(done) {
    const note = typeof done === "string" ? done : "";
    const result = await request("GET", "/api/images/random");
    if (!result.ok) {
      showImage({});
      $("filename").textContent = "No image to show";
      $("caption").textContent = "";
      log("Next image: " + describeError(result), true);
      setStatus(note ? note + " No other image to show." : "No image to show", !note);
      return;
    }
    showImage(result.data);
    log("Showing " + state.filename + (result.data.has_sidecar ? " (has sidecar)" : ""), false);
    setStatus(note ? note + " Now showing " + state.filename + "." : "Showing " + state.filename, false);
  }

  async function analyze() {
    if (!state.filename) return;
    const refresh = $("force-refresh").checked ? "?force_refresh=true" : "";
    const path = "/api/images/" + encodeURIComponent(state.filename) + "/analyze" + refresh;
    setStatus("Analyzing " + state.filename + "…", false);
    const result = await request("POST", path);
    if (!result.ok) {
      log("Analyze " + state.filename + ": " + describeError(result), true);
      setStatus("Analyze failed: " + describeError(result), true);
      if (result.status === 403) await loadStatus();
      return;
    }
    $("caption").textContent = result.data.caption || "";
    $("sd-caption").textContent = result.data.sd_caption ? "SD: " + result.data.sd_caption : "";
    const source = result.data.from_sidecar ? "from sidecar" : result.data.sidecar_written ? "sidecar written" : "not saved";
    log("Analyzed " + result.data.filename + " (" + source + "): " + (result.data.description || ""), false);
    setStatus("Analyzed " + result.data.filename + " (" + source + ")", false);
  }

  // Asks first (naming the platforms); after a success Publish stays off for that image and the next one loads.
  async function publish() {
    if (!state.filename || state.published) return;
    const name = state.filename;
    const targets = platformList();
    if (!window.confirm("Publish " + name + " to " + targets + "?\nThis posts it for real.")) {
      setStatus("Publish cancelled: nothing was posted", false);
      return;
    }
    setStatus("Publishing " + name + " to " + targets + "…", false);
    const result = await request("POST", "/api/images/" + encodeURIComponent(name) + "/publish", {});
    if (!result.ok) {
      const answered = result.data && result.data.results ? result.data.results : {};
      Object.keys(answered).forEach((platform) => {  // a failure after the platforms answered says what they did
        const outcome = answered[platform] || {};
        log("Publish " + name + " to " + platform + ": " + (outcome.success ? "posted" : "failed: " + (outcome.error || "unknown error")), !outcome.success);
      });
      log("Publish " + name + ": " + describeError(result), true);
      setStatus("Publish failed: " + describeError(result), true);
      if (result.status === 403) await loadStatus();
      return;
    }
    const results = result.data.results || {};
    const platforms = Object.keys(results);
    if (platforms.length === 0) log("Publish " + name + ": no platform answered", true);
    platforms.forEach((platform) => {
      const outcome = results[platform] || {};
      const text = outcome.success ? "ok" + (outcome.post_id ? " (" + outcome.post_id + ")" : "") : "failed: " + (outcome.error || "unknown error");
      log("Publish " + name + " to " + platform + ": " + text, !outcome.success);
    });
    log("Publish " + name + ": " + (result.data.any_success ? "published" : "nothing published") + (result.data.archived ? ", archived" : ""), !result.data.any_success);
    if (!result.data.any_success) {
      setStatus("Not published: every platform failed (see the activity log)", true);
      return;
    }
    const posted = platforms.filter((platform) => (results[platform] || {}).success);
    const failed = platforms.filter((platform) => !(results[platform] || {}).success);
    state.published = true;
    updateButtons();
    const outcome = "Published " + name + " to " + posted.join(", ") + (failed.length ? "; failed on " + failed.join(", ") : "") + ".";
    setStatus(outcome + " Loading the next image…", failed.length > 0);
    await nextImage(outcome);
    $("status").classList.toggle("error", failed.length > 0);
  }

  async function login() {
    const field = $("password");
    const result = await request("POST", "/api/admin/login", { password: field.value });
    field.value = "";
    if (result.ok && result.data.admin === true) {
      await loadStatus();
      log("Logged in as admin", false);
      setStatus("Logged in as admin", false);
    } else {
      log("Login: " + describeError(result), true);
      setStatus("Login failed: " + describeError(result), true);
    }
  }

  async function logout() {
    await request("POST", "/api/admin/logout");
    state.platforms = [];
    showAdmin(false, true);
    log("Logged out", false);
    setStatus("Logged out", false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("next-button").addEventListener("click", () => run("Next image", nextImage, $("next-button")));
    $("analyze-button").addEventListener("click", () => run("Analyze", analyze, $("analyze-button")));
    $("publish-button").addEventListener("click", () => run("Publish", publish, $("publish-button")));
    $("logout-button").addEventListener("click", () => run("Logout", logout, $("logout-button")));
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      run("Login", login, $("login-button"));
    });
    run("Start", async () => {
      await loadStatus();
      await nextImage();
    });
  });
})();
