// Starts ReDoc on /redoc, from a served file so that script-src stays 'self'. ReDoc's
// styled-components inject <style> elements; the page's CSP allows them by a per-response nonce,
// which the server puts on this script element: the `nonce` property stays readable by script
// while the browser hides the attribute from the DOM (and from CSS selectors).
(function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(
    root.dataset.specUrl,
    {
      nonce: document.currentScript.nonce,
      // ReDoc's search runs in a worker built from a blob: URL, which worker-src 'self' (from
      // script-src) refuses; the operation list stays, the search box goes.
      disableSearch: true,
    },
    root,
  );
})();
