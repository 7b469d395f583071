// Starts Swagger UI on /docs. It lives in a served file, not in an inline <script> as FastAPI's
// get_swagger_ui_html writes it, so that the page's Content-Security-Policy can keep
// script-src 'self' (functions/api/security_headers.py). The page passes its one setting, the
// schema's URL, as a data attribute; the other settings are FastAPI's defaults.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Swagger UI would otherwise send the schema to a public validator for its badge.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
