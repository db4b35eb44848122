// skiff dashboard: small enhancements over pages that work without JavaScript.
(function () {
  'use strict';
  // Destructive forms ask first.
  document.addEventListener('submit', function (e) {
    var f = e.target;
    var q = f && f.getAttribute && f.getAttribute('data-confirm');
    if (q && !window.confirm(q)) {
      e.preventDefault();
    }
  }, true);
  // The project switcher submits on change.
  document.addEventListener('change', function (e) {
    var el = e.target;
    if (el && el.hasAttribute && el.hasAttribute('data-autosubmit') && el.form) {
      el.form.submit();
    }
  });
  // htmx requests carry the CSRF token like forms do.
  document.addEventListener('htmx:configRequest', function (e) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) { e.detail.headers['X-CSRF-Token'] = m.content; }
  });
  // When a VM's status settles, reload once so the actions and details match it.
  document.addEventListener('htmx:afterSettle', function () {
    var box = document.getElementById('vm-status');
    if (box && !box.hasAttribute('hx-trigger')) {
      window.location.reload();
    }
  });
})();
