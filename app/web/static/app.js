/* Shared page behaviour: the device id, CSRF for fetches, one submit per form, sortable tables.
   No framework, no build step; loaded with `defer` on every page. */
(function () {
  "use strict";

  var DEVICE_KEY = "kepu.deviceId";

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* A random id for this browser, kept in localStorage: sent as X-Device-Id / device_id. */
  function deviceId() {
    var id = null;
    try {
      id = window.localStorage.getItem(DEVICE_KEY);
      if (!id) {
        id = "web-" + randomId();
        window.localStorage.setItem(DEVICE_KEY, id);
      }
    } catch (e) {
      id = id || "web-" + randomId();
    }
    return id;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* fetch() with the session cookie, the CSRF token and the device id. */
  function pageFetch(url, options) {
    options = options || {};
    var headers = options.headers || {};
    headers["X-CSRFToken"] = csrfToken();
    headers["X-Device-Id"] = deviceId();
    options.headers = headers;
    options.credentials = "same-origin";
    return window.fetch(url, options);
  }

  window.Kepu = { deviceId: deviceId, csrfToken: csrfToken, fetch: pageFetch, randomId: randomId };

  function fillDeviceFields() {
    var fields = document.querySelectorAll(".js-device-id");
    for (var i = 0; i < fields.length; i++) {
      fields[i].value = deviceId();
    }
  }

  /* A form with data-confirm asks first (a cancelled booking's seat goes to the waiting list at once). */
  function confirmForms() {
    var forms = document.querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        if (!window.confirm(event.currentTarget.getAttribute("data-confirm"))) {
          event.preventDefault();
          event.stopImmediatePropagation();
        }
      });
    }
  }

  /* A form marked js-once submits once: a double tap does not send it twice. */
  function guardForms() {
    var forms = document.querySelectorAll("form.js-once");
    for (var i = 0; i < forms.length; i++) {
      forms[i].addEventListener("submit", function (event) {
        var form = event.currentTarget;
        if (form.getAttribute("data-sent") === "1") {
          event.preventDefault();
          return;
        }
        form.setAttribute("data-sent", "1");
        form.classList.add("sending");
      });
    }
  }

  /* Selects in a js-autosubmit form reload the page when changed. */
  function autosubmit() {
    var forms = document.querySelectorAll("form.js-autosubmit");
    for (var i = 0; i < forms.length; i++) {
      var selects = forms[i].querySelectorAll("select");
      for (var j = 0; j < selects.length; j++) {
        selects[j].addEventListener("change", function (event) {
          event.currentTarget.form.submit();
        });
      }
    }
  }

  function toggleAll() {
    var buttons = document.querySelectorAll(".js-toggle-all");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        var box = event.currentTarget.closest("fieldset");
        var inputs = box.querySelectorAll('input[type="checkbox"]');
        var anyOff = Array.prototype.some.call(inputs, function (input) { return !input.checked; });
        Array.prototype.forEach.call(inputs, function (input) { input.checked = anyOff; });
      });
    }
  }

  /* Click a header button to sort the table by that column (again to reverse). */
  function sortableTables() {
    var tables = document.querySelectorAll("table.js-sortable");
    Array.prototype.forEach.call(tables, function (table) {
      var buttons = table.querySelectorAll("thead button.sort");
      Array.prototype.forEach.call(buttons, function (button, column) {
        button.addEventListener("click", function () {
          var type = button.getAttribute("data-type");
          var ascending = button.getAttribute("aria-sort") !== "ascending";
          Array.prototype.forEach.call(buttons, function (b) { b.removeAttribute("aria-sort"); });
          button.setAttribute("aria-sort", ascending ? "ascending" : "descending");
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) {
            var x = a.cells[column].getAttribute("data-value") || "";
            var y = b.cells[column].getAttribute("data-value") || "";
            var result = type === "number" ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y, "zh-CN");
            return ascending ? result : -result;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    fillDeviceFields();
    confirmForms();
    guardForms();
    autosubmit();
    toggleAll();
    sortableTables();
  });
})();
