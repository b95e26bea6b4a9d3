/* The pass scanner: a USB scanner types the pass and Enter into the field (or the camera reads it
   with the browser's BarcodeDetector). Every scan is queued in localStorage with its nonce and
   scanned_at, then uploaded in batches; a scan whose upload fails stays queued and goes up when
   the network returns (on the `online` event and every 15 s). The nonce makes a repeated upload
   a replay, never a second scan. */
(function () {
  "use strict";

  var QUEUE_KEY = "kepu.scanQueue";
  var BATCH = 200;
  var root, input, activity, results, countLabel, netLabel;
  var uploading = false;
  var camera = { stream: null, detector: null, last: "", lastAt: 0 };

  function loadQueue() {
    try {
      return JSON.parse(window.localStorage.getItem(QUEUE_KEY) || "[]");
    } catch (e) {
      return [];
    }
  }

  function saveQueue(queue) {
    window.localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
    showCount();
  }

  function showCount() {
    var n = loadQueue().length;
    countLabel.textContent = String(n);
    root.setAttribute("data-queued", String(n));
  }

  function showNet() {
    var online = navigator.onLine;
    netLabel.textContent = online ? "在线" : "离线：扫码照常记录，联网后上传";
    netLabel.className = "net " + (online ? "online" : "offline");
  }

  function direction() {
    var checked = document.querySelector('input[name="direction"]:checked');
    return checked ? checked.value : "entry";
  }

  function addResult(text, kind, nonce) {
    var item = document.createElement("li");
    item.className = kind;
    if (nonce) {
      item.setAttribute("data-nonce", nonce);
    }
    item.textContent = text;
    results.insertBefore(item, results.firstChild);
    while (results.children.length > 50) {
      results.removeChild(results.lastChild);
    }
    return item;
  }

  function timeLabel(iso) {
    var d = new Date(iso);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function enqueue(pass) {
    pass = pass.trim();
    if (!pass) {
      return;
    }
    var scan = {
      student_pass: pass,
      activity_id: parseInt(activity.value, 10),
      direction: direction(),
      scanned_at: new Date().toISOString(),
      nonce: window.Kepu.randomId()
    };
    var queue = loadQueue();
    queue.push(scan);
    saveQueue(queue);
    addResult(timeLabel(scan.scanned_at) + " " + (scan.direction === "exit" ? "签退" : "签到") + "：已记录，待上传",
      "queued", scan.nonce);
    flush();
  }

  function settle(answers) {
    var done = {};
    answers.forEach(function (row) {
      done[row.nonce] = true;
      var text;
      if (row.status === "refused") {
        text = (row.label ? row.label + "：" : "") + (row.message || "未成功");
      } else {
        text = (row.label ? row.label + "：" : "") + (row.message || "成功");
      }
      var item = results.querySelector('li[data-nonce="' + row.nonce + '"]');
      if (item) {
        item.textContent = item.textContent.split("：")[0] + " · " + text;
        item.className = row.status === "refused" ? "refused" : "ok";
      } else {
        addResult(text, row.status === "refused" ? "refused" : "ok", row.nonce);
      }
    });
    var left = loadQueue().filter(function (scan) { return !done[scan.nonce]; });
    saveQueue(left);
  }

  function flush() {
    if (uploading || !navigator.onLine) {
      showCount();
      return;
    }
    var queue = loadQueue();
    if (!queue.length) {
      return;
    }
    uploading = true;
    var chunk = queue.slice(0, BATCH);
    window.Kepu.fetch(root.getAttribute("data-upload-url"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scans: chunk })
    })
      .then(function (response) {
        if (response.status === 401) {
          netLabel.textContent = "登录已过期：请重新登录，记录仍保存在本机";
          throw new Error("logged out");
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        uploading = false;
        settle(body.results || []);
        if (loadQueue().length) {
          flush();
        }
      })
      .catch(function () {
        uploading = false;
        showCount();
      });
  }

  /* Camera scanning through the browser's own BarcodeDetector (no external library). */
  function startCamera() {
    var video = document.getElementById("camera");
    camera.detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
      .then(function (stream) {
        camera.stream = stream;
        video.srcObject = stream;
        video.hidden = false;
        document.getElementById("camera-stop").hidden = false;
        return video.play();
      })
      .then(function () { detect(video); })
      .catch(function () {
        addResult("无法打开摄像头，请允许使用摄像头或改用扫码枪", "refused");
      });
  }

  function detect(video) {
    if (!camera.stream) {
      return;
    }
    camera.detector.detect(video)
      .then(function (codes) {
        codes.forEach(function (code) {
          var now = Date.now();
          if (code.rawValue !== camera.last || now - camera.lastAt > 5000) {
            camera.last = code.rawValue;
            camera.lastAt = now;
            enqueue(code.rawValue);
          }
        });
      })
      .catch(function () {})
      .then(function () { window.setTimeout(function () { detect(video); }, 250); });
  }

  function stopCamera() {
    var video = document.getElementById("camera");
    if (camera.stream) {
      camera.stream.getTracks().forEach(function (track) { track.stop(); });
    }
    camera.stream = null;
    video.hidden = true;
    document.getElementById("camera-stop").hidden = true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.getElementById("scanner");
    if (!root) {
      return;
    }
    input = document.getElementById("pass-input");
    activity = document.getElementById("activity");
    results = document.getElementById("results");
    countLabel = document.getElementById("queue-count");
    netLabel = document.getElementById("net-status");
    document.getElementById("scan-form").addEventListener("submit", function (event) {
      event.preventDefault();
      enqueue(input.value);
      input.value = "";
      input.focus();
    });
    document.getElementById("flush").addEventListener("click", flush);
    if ("BarcodeDetector" in window && navigator.mediaDevices) {
      var start = document.getElementById("camera-start");
      start.hidden = false;
      start.addEventListener("click", startCamera);
      document.getElementById("camera-stop").addEventListener("click", stopCamera);
    }
    window.addEventListener("online", function () { showNet(); flush(); });
    window.addEventListener("offline", showNet);
    window.setInterval(flush, 15000);
    showNet();
    showCount();
    flush();
    root.setAttribute("data-ready", "1");
  });
})();
