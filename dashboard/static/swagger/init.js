// Starts Swagger UI on /docs. A file of its own, not an inline script: the page's
// Content-Security-Policy allows only hookwatch's own scripts.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
  });
});
