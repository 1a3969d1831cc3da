// The dashboard's entry point: routes the URL's hash to a page (`#/jobs`, `#/jobs/<id>`, `#/compare`,
// `#/sweeps`, `#/sweeps/<id>`, `#/datasets`, `#/submit`, `#/workers`), and ends the previous page's fetches, streams and timers
// whenever the user navigates.

import { comparePage } from "./compare.js";
import { datasetsPage } from "./datasets.js";
import { PageLifetime, h } from "./dom.js";
import { jobPage } from "./job.js";
import { jobsPage } from "./jobs.js";
import { submitPage } from "./submit.js";
import { sweepPage, sweepsPage } from "./sweeps.js";
import { workersPage } from "./workers.js";

const ID = "([0-9a-f]{32})";
const ROUTES = [
  { pattern: new RegExp(`^/jobs/${ID}$`), section: "jobs", title: "Job", show: (root, match, query, life) => jobPage(root, match[1], life) },
  { pattern: /^\/jobs$/, section: "jobs", title: "Jobs", show: (root, match, query, life) => jobsPage(root, query, life) },
  { pattern: /^\/compare$/, section: "compare", title: "Compare", show: (root, match, query, life) => comparePage(root, query, life) },
  { pattern: new RegExp(`^/sweeps/${ID}$`), section: "sweeps", title: "Sweep", show: (root, match, query, life) => sweepPage(root, match[1], query, life) },
  { pattern: /^\/sweeps$/, section: "sweeps", title: "Sweeps", show: (root, match, query, life) => sweepsPage(root, query, life) },
  { pattern: /^\/datasets$/, section: "datasets", title: "Datasets", show: (root, match, query, life) => datasetsPage(root, query, life) },
  { pattern: /^\/submit$/, section: "submit", title: "Submit", show: (root, match, query, life) => submitPage(root, query, life) },
  { pattern: /^\/workers$/, section: "workers", title: "Workers", show: (root, match, query, life) => workersPage(root, query, life) },
];

let current = null;

function route() {
  const [path, queryText = ""] = (location.hash.replace(/^#/, "") || "/jobs").split("?");
  const query = new URLSearchParams(queryText);
  current?.end();
  current = new PageLifetime();
  const root = h("div", { class: "page" });
  document.getElementById("page").replaceChildren(root);
  const matched = ROUTES.map((candidate) => ({ candidate, match: path.match(candidate.pattern) })).find(({ match }) => match);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === matched?.candidate.section);
  }
  if (!matched) {
    document.title = "bnlab";
    root.append(h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/jobs" }, "See the jobs.")));
    return;
  }
  document.title = `${matched.candidate.title} · bnlab`;
  matched.candidate.show(root, matched.match, query, current);
}

window.addEventListener("hashchange", route);
route();
