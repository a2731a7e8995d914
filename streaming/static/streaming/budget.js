// The reader's budget this month, in the sidebar: spent of the limit, and what is left (what replies
// streaming now hold counts as not left). Asked for when the page opens and after each reply.

import { usd } from "./format.js";

export class BudgetView {
  constructor(element, api) {
    this.element = element;
    this.api = api;
    this.text = element.querySelector(".budget-text");
    this.meter = element.querySelector("meter");
    this.status = null;
  }

  async refresh() {
    try {
      this.status = await this.api.budget();
    } catch {
      return null; // the budget is shown again after the next reply
    }
    this.show(this.status);
    return this.status;
  }

  show(status) {
    this.element.hidden = false;
    this.text.textContent = describe(status);
    const limited = status.limit !== null;
    this.meter.hidden = !limited;
    if (limited) {
      this.meter.max = Number(status.limit) || 1;
      this.meter.value = Math.min(this.meter.max, Number(status.spent) + Number(status.reserved || 0));
      this.meter.high = this.meter.max * 0.8;
      this.meter.optimum = 0;
    }
  }
}

/** "$0.42 of $5.00 used · $4.58 left" (or "$0.42 used, no limit"). */
export function describe(status) {
  if (status.limit === null) return `${usd(status.spent)} used this month, no limit`;
  return `${usd(status.spent)} of ${usd(status.limit)} used · ${usd(status.remaining)} left`;
}
