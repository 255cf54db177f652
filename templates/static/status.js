// Keeps an open status page current without a reload: asks the job's JSON with its ETag every few seconds
// (a 304 costs next to nothing) and, when the job changed, swaps in the freshly rendered status region.
// The page is complete without this script.
(function () {
  "use strict";
  var region = document.getElementById("job-status");
  if (!region || !window.fetch || !window.DOMParser) {
    return;
  }
  var pollUrl = region.getAttribute("data-poll-url");
  var seconds = Math.max(1, parseInt(region.getAttribute("data-poll-seconds"), 10) || 20);
  var etag = region.getAttribute("data-etag");
  var note = document.getElementById("live-note");

  function replaceFrom(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var freshRegion = fresh.getElementById("job-status");
    if (!freshRegion) {
      return;
    }
    region.replaceWith(freshRegion);
    region = freshRegion;
    var freshSurvey = fresh.getElementById("survey");
    var survey = document.getElementById("survey");
    if (freshSurvey && !survey) {
      document.getElementById("question").before(freshSurvey);
    }
    if (note) {
      note.textContent = note.getAttribute("data-updated") || "";
    }
  }

  function poll() {
    fetch(pollUrl, { headers: { "If-None-Match": etag }, cache: "no-store" })
      .then(function (response) {
        if (response.status !== 200) {
          return null;
        }
        etag = response.headers.get("ETag") || etag;
        return fetch(window.location.href, { cache: "no-store" }).then(function (page) {
          return page.ok ? page.text() : null;
        });
      })
      .then(function (html) {
        if (html) {
          replaceFrom(html);
        }
      })
      .catch(function () {
        // Offline for a moment: the next poll tries again.
      })
      .then(function () {
        window.setTimeout(poll, seconds * 1000);
      });
  }

  window.setTimeout(poll, seconds * 1000);
})();
