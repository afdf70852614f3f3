// publisher_v2 page. Every value from the server reaches the DOM through textContent or a checked attribute,
// never through HTML parsing: filenames and captions are data, not markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { filename: null, admin: false, busy: false };

  function setBusy(busy) {
    state.busy = busy;
    document.querySelectorAll("[data-action]").forEach((button) => {
      button.disabled = busy;
    });
    $("next-button").disabled = busy;
    $("analyze-button").disabled = busy || !state.filename;
    $("publish-button").disabled = busy || !state.filename;
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

  function describeError(result) {
    const message = result.data && typeof result.data.error === "string" ? result.data.error : "request failed";
    return "HTTP " + result.status + ": " + message;
  }

  // Runs one action at a time with every button disabled; a thrown error is logged, never left hanging.
  async function run(label, action) {
    if (state.busy) return;
    setBusy(true);
    try {
      await action();
    } catch (e) {
      log(label + " failed: " + (e && e.message ? e.message : String(e)), true);
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
    if (result.ok) showAdmin(result.data.admin === true, result.data.configured !== false);
  }

  async function nextImage() {
    const result = await request("GET", "/api/images/random");
    if (!result.ok) {
      $("filename").textContent = "No image to show";
      log("Next image: " + describeError(result), true);
      return;
    }
    showImage(result.data);
    log("Showing " + state.filename + (result.data.has_sidecar ? " (has sidecar)" : ""), false);
  }

  async function analyze() {
    if (!state.filename) return;
    const refresh = $("force-refresh").checked ? "?force_refresh=true" : "";
    const path = "/api/images/" + encodeURIComponent(state.filename) + "/analyze" + refresh;
    const result = await request("POST", path);
    if (!result.ok) {
      log("Analyze " + state.filename + ": " + describeError(result), true);
      if (result.status === 403) await loadStatus();
      return;
    }
    $("caption").textContent = result.data.caption || "";
    $("sd-caption").textContent = result.data.sd_caption ? "SD: " + result.data.sd_caption : "";
    const source = result.data.from_sidecar ? "from sidecar" : result.data.sidecar_written ? "sidecar written" : "not saved";
    log("Analyzed " + result.data.filename + " (" + source + "): " + (result.data.description || ""), false);
  }

  async function publish() {
    if (!state.filename) return;
    const name = state.filename;
    const result = await request("POST", "/api/images/" + encodeURIComponent(name) + "/publish", {});
    if (!result.ok) {
      log("Publish " + name + ": " + describeError(result), true);
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
  }

  async function login() {
    const field = $("password");
    const result = await request("POST", "/api/admin/login", { password: field.value });
    field.value = "";
    if (result.ok && result.data.admin === true) {
      showAdmin(true, true);
      log("Logged in as admin", false);
    } else {
      log("Login: " + describeError(result), true);
    }
  }

  async function logout() {
    await request("POST", "/api/admin/logout");
    showAdmin(false, true);
    log("Logged out", false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("next-button").addEventListener("click", () => run("Next image", nextImage));
    $("analyze-button").addEventListener("click", () => run("Analyze", analyze));
    $("publish-button").addEventListener("click", () => run("Publish", publish));
    $("logout-button").addEventListener("click", () => run("Logout", logout));
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      run("Login", login);
    });
    run("Start", async () => {
      await loadStatus();
      await nextImage();
    });
  });
})();
