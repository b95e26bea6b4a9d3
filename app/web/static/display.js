/* The venue display: shows the rotating venue code full screen and fetches the next one just
   after each 30-second window starts (the server says when, and its own time, so the display PC's
   clock may be wrong). A code is accepted in its own window and the next, so the QR on screen is
   always valid; if the network fails, the page retries and says so. */
(function () {
  "use strict";

  var root, qr, statusLine, clock;
  var skew = 0; /* server time minus local time, ms */
  var timer = null;
  var expiresAt = 0;

  function serverNow() {
    return Date.now() + skew;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function tick() {
    var now = new Date(serverNow());
    clock.textContent = pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds());
    if (expiresAt && serverNow() > expiresAt) {
      statusLine.textContent = "二维码已过期，正在重新获取…";
      root.classList.add("stale");
    }
  }

  function schedule(ms) {
    if (timer) {
      window.clearTimeout(timer);
    }
    timer = window.setTimeout(refresh, Math.max(500, Math.min(ms, 20000)));
  }

  function refresh() {
    var url = root.getAttribute("data-code-url");
    window.fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          statusLine.textContent = "登录已过期，请重新登录后再打开大屏。";
          throw new Error("logged out");
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (code) {
        skew = Date.parse(code.now) - Date.now();
        expiresAt = Date.parse(code.expires_at);
        var next = new Image();
        next.onload = function () {
          qr.src = next.src;
          qr.setAttribute("data-token", code.token);
          root.setAttribute("data-token", code.token);
          root.classList.remove("stale");
          statusLine.textContent = "二维码每 30 秒自动更新";
        };
        next.src = code.image;
        schedule(Date.parse(code.refresh_at) - Date.parse(code.now) + 300);
      })
      .catch(function () {
        if (statusLine.textContent.indexOf("登录") === -1) {
          statusLine.textContent = "网络中断，正在重试…";
        }
        schedule(3000);
      });
  }

  function fullscreen() {
    var el = document.documentElement;
    if (document.fullscreenElement) {
      document.exitFullscreen();
    } else if (el.requestFullscreen) {
      el.requestFullscreen().catch(function () {});
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.getElementById("display");
    qr = document.getElementById("qr");
    statusLine = document.getElementById("status");
    clock = document.getElementById("clock");
    document.getElementById("fullscreen").addEventListener("click", fullscreen);
    window.addEventListener("online", refresh);
    tick();
    window.setInterval(tick, 1000);
    refresh();
  });
})();
