// The page's access token, for a server started with --secret: an application that embeds
// cowrite (or `cowrite token --url`) links to the page with `?token=<JWT>`. The page keeps it for
// the tab (sessionStorage: a reload keeps it, closing the tab forgets it) and removes it from the
// address bar, so it is not copied along with a document's link. The server verifies it; the page
// only reads the name and color it claims, to show them as its own.

/** The token for this tab: from `?token=` (then stored and stripped from the URL), else the one
 *  stored earlier, else null. `loc` is `location`, `tab` a storage (identity.js), `hist` `history`. */
export function pageToken(loc, tab, hist) {
  const url = new URL(loc.href);
  const given = url.searchParams.get("token");
  if (given === null) return tab.get("token") || null;
  url.searchParams.delete("token");
  hist.replaceState(hist.state, "", `${url.pathname}${url.search}${url.hash}`);
  if (!given) return null;
  tab.set("token", given);
  return given;
}

/** The claims a JWT carries, unverified ({} when it is not one): for display only. */
export function tokenClaims(token) {
  const part = String(token || "").split(".")[1];
  if (!part) return {};
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : {};
  } catch {
    return {};
  }
}
