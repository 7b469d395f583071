// Starts Swagger UI on /docs. It lives in a served file, not in an inline <script> as FastAPI's
// get_swagger_ui_html writes it, so that the page's Content-Security-Policy can keep
// script-src 'self' (functions/api/security_headers.py). The page passes its one setting, the
// schema's URL, as a data attribute; the other settings are FastAPI's defaults.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var origin = window.location.origin;
  // Behind an API Gateway stage (or a base path mapping) the page is at /<prefix>/docs while the
  // app sees /docs, and the schema names no server: "Try it out" would call /predict/churn on
  // the bare host, which the gateway refuses. Requests to this origin get the page's prefix.
  var prefix = window.location.pathname.replace(/\/docs$/, "");
  function withPrefix(request) {
    if (prefix && request.url.indexOf(origin + "/") === 0 &&
        request.url.indexOf(origin + prefix + "/") !== 0) {
      request.url = origin + prefix + request.url.slice(origin.length);
    }
    return request;
  }
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Swagger UI would otherwise send the schema to a public validator for its badge.
    validatorUrl: null,
    requestInterceptor: withPrefix,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
