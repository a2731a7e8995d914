// The reader's theme: light, dark, or the system's (the default), remembered in this browser. A classic
// script in the page's head, run before the page is drawn, so that a dark page never flashes light.
// The page's colours follow <html data-theme> (chat.css); the theme menu is wired once the page is read.

(function () {
  const KEY = "streaming.theme";
  const CHOICES = ["system", "light", "dark"];

  function saved() {
    try {
      const value = localStorage.getItem(KEY);
      return CHOICES.includes(value) ? value : "system";
    } catch {
      return "system"; // storage refused (a private window, a policy): the system decides
    }
  }

  function apply(choice) {
    if (choice === "system") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = choice;
  }

  apply(saved());
  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("theme");
    if (!select) return;
    select.value = saved();
    select.addEventListener("change", () => {
      apply(select.value);
      try {
        localStorage.setItem(KEY, select.value);
      } catch {
        // not remembered: it still applies to this page
      }
    });
  });
})();
