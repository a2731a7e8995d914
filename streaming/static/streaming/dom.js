// Small helpers that build the page's elements.

/** A `tag` element with a class and its text. */
export function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A button of the transcript or the list: `action` names what a click on it does. */
export function actionButton(action, label, text = label, className = "text-button") {
  const element = make("button", `${className} ${action}`, text);
  element.type = "button";
  element.dataset.action = action;
  if (text !== label) element.setAttribute("aria-label", label);
  return element;
}

/** One of the page's icons (the template's SVG sprite), hidden from screen readers. */
export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.append(use);
  return svg;
}
