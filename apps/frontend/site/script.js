// The generator page: validate the form, ask /api/generate, show the answer card, take votes.
// Everything that came from the API or the user is written with textContent, never as HTML.

import { ApiError, callApi, fieldProblems } from "./api.js";
import { formatMs, formatPercent, formatTime, shortVersion } from "./format.js";

const HISTORY_KEY = "pressroom.history";
const HISTORY_LIMIT = 50;
const VOTE_WORDS = { up: "good", down: "bad" };

/**
 * The generation settings the form offers. Their bounds and defaults are the API's own
 * (`GenerateRequest` in /api/openapi.json): `contract` fills them in, so the page holds no copy.
 */
const PARAMETERS = [
  { name: "max_new_tokens", label: "Max new tokens" },
  { name: "temperature", label: "Temperature" },
  { name: "top_k", label: "Top-k", note: "0 = off" },
  { name: "top_p", label: "Top-p" },
  { name: "seed", label: "Seed", optional: true },
];

const form = document.getElementById("generate-form");
const promptInput = document.getElementById("prompt");
const promptCount = document.getElementById("prompt-count");
const generateButton = document.getElementById("generate-button");
const generateStatus = document.getElementById("generate-status");
const generateError = document.getElementById("generate-error");
const answerSection = document.getElementById("answer");
const historyList = document.getElementById("history");
const historyEmpty = document.getElementById("history-empty");

/** The request's rules from the API's OpenAPI document, or null when it cannot be read. */
const contract = loadContract();

/** Session state: newest last. Each entry: {generation, vote, sending, voteMessage, voteFailed}. */
const entries = loadHistory();
let shownEntry = null;

form.addEventListener("submit", (event) => {
  event.preventDefault();
  generate();
});
promptInput.addEventListener("input", () => {
  promptCount.textContent = String(promptInput.value.length);
});
promptInput.addEventListener("keydown", (event) => {
  // Ctrl/Cmd+Enter submits from the textarea, where plain Enter adds a line.
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

renderHistory();
if (entries.length > 0) showEntry(entries[entries.length - 1]);

async function generate() {
  // Ctrl+Enter submits even while the button is disabled: one request at a time.
  if (form.getAttribute("aria-busy") === "true") return;
  clearErrors();
  const request = readRequest(await contract);
  if (!request) return;

  setBusy(true);
  try {
    const generation = await callApi("generate", { method: "POST", body: request });
    const entry = { generation, vote: null, sending: false, voteMessage: "", voteFailed: false };
    entries.push(entry);
    entries.splice(0, entries.length - HISTORY_LIMIT);
    saveHistory();
    showEntry(entry);
    renderHistory();
    answerSection.scrollIntoView({ block: "nearest" }); // on a phone the card is below the fold
    generateStatus.textContent = `Headline ready from variant ${generation.variant}.`;
  } catch (error) {
    showRequestError(error);
    generateStatus.textContent = "";
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  generateButton.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
  generateButton.textContent = busy ? "Generating…" : "Generate";
  if (busy) generateStatus.textContent = "Generating a headline…";
}

/** The request body, or null after marking each invalid field with the reason. */
async function loadContract() {
  let schema;
  try {
    schema = (await callApi("openapi.json")).components.schemas.GenerateRequest.properties;
  } catch (error) {
    // The API still checks every request and names the field it rejects.
    console.warn("The API's contract could not be read; the API checks the settings.", error);
    return null;
  }
  const rules = { promptMaxChars: schema.prompt.maxLength, parameters: [] };
  promptInput.maxLength = rules.promptMaxChars;
  document.getElementById("prompt-max").textContent = String(rules.promptMaxChars);
  for (const parameter of PARAMETERS) {
    // An optional number is `anyOf: [{number rules}, {type: "null"}]`.
    const property = schema[parameter.name];
    const bounds = property.anyOf ? property.anyOf.find((item) => item.type !== "null") : property;
    const rule = {
      ...parameter,
      integer: bounds.type === "integer",
      min: bounds.minimum ?? bounds.exclusiveMinimum,
      minExclusive: bounds.exclusiveMinimum !== undefined,
      max: bounds.maximum,
    };
    rules.parameters.push(rule);
    const input = form.elements[parameter.name];
    if (!rule.minExclusive) input.min = String(rule.min);
    input.max = String(rule.max);
    if (property.default !== null && property.default !== undefined && input.value === "") {
      input.value = String(property.default);
    }
    if (!parameter.optional) {
      document.getElementById(`${parameter.name}-hint`).textContent = hint(rule);
    }
  }
  return rules;
}

function hint({ integer, min, minExclusive, max, note }) {
  const range = integer && !minExclusive ? `${min} to ${max}` : `${minExclusive ? "above" : "at least"} ${min}, at most ${max}`;
  return note ? `${range} (${note})` : range;
}

function readRequest(rules) {
  const problems = [];
  const prompt = promptInput.value.trim();
  if (prompt.length === 0) problems.push({ field: "prompt", reason: "Enter a prompt." });
  if (rules && prompt.length > rules.promptMaxChars) {
    problems.push({ field: "prompt", reason: `Use at most ${rules.promptMaxChars} characters.` });
  }
  const request = { prompt };
  for (const parameter of rules?.parameters ?? PARAMETERS) {
    const raw = form.elements[parameter.name].value.trim();
    if (raw === "" && parameter.optional) continue;
    const value = Number(raw);
    const reason = parameterProblem(parameter, raw, value);
    if (reason) problems.push({ field: parameter.name, reason });
    else request[parameter.name] = value;
  }
  if (problems.length === 0) return request;
  showFieldProblems(problems);
  return null;
}

function parameterProblem(parameter, raw, value) {
  const { label, integer, min, minExclusive, max } = parameter;
  if (raw === "") return `${label} is required.`;
  if (!Number.isFinite(value)) return `${label} must be a number.`;
  if (integer && !Number.isInteger(value)) return `${label} must be a whole number.`;
  if (max === undefined) return null; // no contract: the API judges the range
  if (value > max || value < min || (minExclusive && value === min)) {
    return `${label} must be ${minExclusive ? "above" : "at least"} ${min} and at most ${max}.`;
  }
  return null;
}

function showFieldProblems(problems) {
  for (const { field, reason } of problems) {
    const input = form.elements[field];
    const message = document.getElementById(`${field}-error`);
    if (!input || !message) continue;
    input.setAttribute("aria-invalid", "true");
    message.textContent = reason;
    message.hidden = false;
    // Settings hide inside <details>; open it so the marked field can be seen.
    input.closest("details")?.setAttribute("open", "");
  }
  const first = form.elements[problems[0].field];
  first?.focus();
  showError(problems.map((problem) => problem.reason).join(" "));
}

function showRequestError(error) {
  if (!(error instanceof ApiError)) {
    console.error(error);
    showError("Something went wrong in the page. Reload and try again.");
    return;
  }
  const problems = fieldProblems(error).filter((problem) => form.elements[problem.field]);
  if (problems.length > 0) showFieldProblems(problems);
  showError(error.message);
}

function showError(message) {
  generateError.textContent = message;
  generateError.hidden = false;
}

function clearErrors() {
  generateError.hidden = true;
  generateError.textContent = "";
  for (const message of form.querySelectorAll(".field-error")) {
    message.hidden = true;
    message.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// ----- answer card -----

function showEntry(entry) {
  shownEntry = entry;
  const card = document.getElementById("answer-card").content.firstElementChild.cloneNode(true);
  const { generation } = entry;
  card.dataset.generationId = generation.generation_id;
  // The API joins prompt and continuation into the headline; the card marks the model's part.
  const { headline, prompt } = generation;
  setField(card, "prompt", headline.slice(0, prompt.length));
  setField(card, "text", headline.slice(prompt.length));
  setField(card, "variant", `${generation.variant} · ${generation.strategy ?? "?"}`);
  const model = card.querySelector('[data-field="model"]');
  model.textContent = `${generation.model?.name ?? "?"} @ ${shortVersion(generation.model?.version)}`;
  model.title = `version ${generation.model?.version ?? "unknown"}`;
  const chip = card.querySelector('[data-field="category"]');
  chip.textContent = categoryText(generation);
  chip.classList.toggle("is-none", !generation.category);
  chip.classList.toggle("is-uncertain", abstained(generation));
  chip.title = categoryTitle(generation);
  if (generation.category) chip.dataset.label = generation.category.label;
  const latency = generation.latency_ms ?? {};
  setField(card, "latency", `${formatMs(latency.total)} total`);
  setField(card, "latency-parts", latencyParts(latency));

  for (const button of card.querySelectorAll(".vote-button")) {
    button.addEventListener("click", () => vote(entry, button.dataset.vote));
  }
  answerSection.replaceChildren(card);
  answerSection.hidden = false;
  updateVoteControls();
}

function setField(root, field, text) {
  root.querySelector(`[data-field="${field}"]`).textContent = text;
}

/** The classifier answered but named no category: it was not confident enough. */
function abstained(generation) {
  const confidence = generation.category_confidence;
  return !generation.category && confidence !== null && confidence !== undefined;
}

/** The chip: the category and its confidence; "uncertain" when the classifier was not
 *  confident enough to name one; "no category" when no classifier answered. */
function categoryText(generation) {
  const { category } = generation;
  if (category) return `${category.label} ${formatPercent(category.score)}`;
  return abstained(generation) ? "uncertain" : "no category";
}

function categoryTitle(generation) {
  const { category, category_confidence: confidence } = generation;
  if (category) return `The classifier is ${formatPercent(category.score)} sure of this category.`;
  if (abstained(generation)) {
    return (
      "The classifier is not confident enough to name a category " +
      `(${formatPercent(confidence)} sure of its best guess).`
    );
  }
  return "The classifier did not answer.";
}

/** Where the time went: the model call, and the classifier when one answered. */
function latencyParts(latency) {
  const parts = [`model ${formatMs(latency.model)}`];
  if (latency.classifier !== null && latency.classifier !== undefined) {
    parts.push(`classifier ${formatMs(latency.classifier)}`);
  }
  return parts.join(" · ");
}

function updateVoteControls() {
  if (!shownEntry) return;
  const card = answerSection.querySelector(".card");
  for (const button of card.querySelectorAll(".vote-button")) {
    button.setAttribute("aria-pressed", String(shownEntry.vote === button.dataset.vote));
    button.disabled = shownEntry.sending;
  }
  const status = card.querySelector(".vote-status");
  status.textContent = shownEntry.voteMessage;
  status.classList.toggle("is-error", shownEntry.voteFailed);
}

async function vote(entry, choice) {
  if (entry.sending || entry.vote === choice) return;
  entry.sending = true;
  entry.voteFailed = false;
  entry.voteMessage = "Saving your vote…";
  updateVoteControls();
  try {
    const stored = await callApi("feedback", {
      method: "POST",
      // The token the API issued with this headline: it lets this reader, and no one else, vote.
      body: {
        generation_id: entry.generation.generation_id,
        vote: choice,
        vote_token: entry.generation.vote_token,
      },
    });
    entry.vote = stored.vote === "up" || stored.vote === "down" ? stored.vote : choice;
    entry.voteMessage = `Vote saved: ${VOTE_WORDS[entry.vote]}.`;
  } catch (error) {
    entry.voteFailed = true;
    entry.voteMessage =
      error instanceof ApiError
        ? `Your vote was not saved: ${error.message}`
        : "Your vote was not saved: something went wrong in the page.";
    if (!(error instanceof ApiError)) console.error(error);
  } finally {
    entry.sending = false;
    saveHistory();
    updateVoteControls();
    renderHistory();
  }
}

// ----- session history -----

function renderHistory() {
  const template = document.getElementById("history-item").content.firstElementChild;
  const items = entries
    .slice()
    .reverse()
    .map((entry) => {
      const item = template.cloneNode(true);
      const { generation } = entry;
      setField(item, "headline", generation.headline);
      setField(
        item,
        "summary",
        `${formatTime(generation.created_at)} · variant ${generation.variant} · ${categoryText(generation)}`,
      );
      setField(item, "vote", entry.vote ? `voted ${VOTE_WORDS[entry.vote]}` : "not voted");
      const show = item.querySelector(".history-show");
      show.addEventListener("click", () => {
        showEntry(entry);
        answerSection.querySelector(".vote-button")?.focus();
      });
      show.setAttribute("aria-label", `Show and rate: ${generation.headline}`);
      return item;
    });
  historyList.replaceChildren(...items);
  historyEmpty.hidden = entries.length > 0;
}

function loadHistory() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? "[]");
    if (!Array.isArray(stored)) return [];
    // A vote in flight when the tab reloaded has unknown status; show it as not sent. Entries
    // saved before the API answered `headline` are dropped: only the API joins a headline.
    return stored
      .filter(
        (entry) =>
          entry?.generation?.generation_id && typeof entry.generation.headline === "string",
      )
      .map((entry) => ({ ...entry, sending: false, voteMessage: "", voteFailed: false }));
  } catch {
    return [];
  }
}

function saveHistory() {
  const kept = entries.map(({ generation, vote }) => ({ generation, vote }));
  try {
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(kept));
  } catch {
    // Storage full or disabled: the history still lives for this page.
  }
}
