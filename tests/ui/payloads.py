"""Script-injection payloads for the dashboard's tests: text a log may carry that would run
script, load a resource or build elements if the page ever turned log data into markup.

Each payload, were it executed, sets ``window.__injected = true`` or asks the test's listener
(``LISTENER``, replaced by the listener's origin: ``http://127.0.0.1:<port>``) for a path
containing ``stolen``; the test asserts neither happens, that no element a payload would create
exists, and that the payload is shown as its literal text. The list draws on the OWASP XSS
filter evasion cheat sheet (https://cheatsheetseries.owasp.org/cheatsheets/
XSS_Filter_Evasion_Cheat_Sheet.html) and on the mutation-XSS cases of DOMPurify's tests.
"""

from __future__ import annotations

LISTENER = "LISTENER_ORIGIN"

_SET = "window.__injected=true"
_FETCH = f"fetch('{LISTENER}/stolen')"

PAYLOADS: tuple[str, ...] = (
    # markup that runs script when parsed as HTML
    f"<script>{_SET}</script>",
    f"<script>{_FETCH}</script>",
    f"<img src=x onerror={_SET}>",
    f'<img src=x onerror="{_FETCH}">',
    f"<svg onload={_SET}>",
    f"<svg><script>{_SET}</script></svg>",
    f"<svg><a href='javascript:{_SET}'><text x=0 y=20>svg link</text></a></svg>",
    f"<body onload={_SET}>",
    f"<details open ontoggle={_SET}>",
    f"<input autofocus onfocus={_SET}>",
    f"<video><source onerror={_SET}></video>",
    f"<marquee onstart={_SET}>marquee</marquee>",
    f"<x onclick={_SET}>click me</x>",
    '<iframe srcdoc="<script>parent.__injected=true</script>"></iframe>',
    f"<object data='javascript:{_SET}'></object>",
    f'<embed src="javascript:{_SET}">',
    # URLs that run script if used as a link or a source
    f"javascript:{_SET}",
    f'<a href="javascript:{_SET}">a javascript: link</a>',
    f"data:text/html,<script>{_SET}</script>",
    f"<meta http-equiv=refresh content='0;url=javascript:{_SET}'>",
    # closing the element the value may sit in, then starting markup
    f"</textarea><script>{_SET}</script>",
    f"</pre><img src=x onerror={_SET}>",
    f"</title><script>{_SET}</script>",
    f"</script><script>{_SET}</script>",
    f"</style><img src=x onerror={_SET}>",
    # breaking out of an attribute value
    f'"><img src=x onerror={_SET}>',
    f"'><img src=x onerror={_SET}>",
    f'" onmouseover="{_SET}" data-x="',
    f"' autofocus onfocus='{_SET}' data-x='",
    # template syntax: a front end that evaluated templates would show 49 or run the code
    "{{7*7}}",
    "${7*7}",
    f"{{{{constructor.constructor('{_SET}')()}}}}",
    f"${{{_SET}}}",
    "<%= 7*7 %>",
    # CSS that loads or runs something
    f"<div style=\"background:url('{LISTENER}/stolen-css')\">css url</div>",
    f'<div style="width:expression({_SET})">css expression</div>',
    f"<style>@import '{LISTENER}/stolen-import';</style>",
    f'<link rel=stylesheet href="{LISTENER}/stolen-link">',
    # requests that leave for the listener without script
    f'<img src="{LISTENER}/stolen-img">',
    f'<form action="{LISTENER}/stolen-form"><button>send</button></form>',
    f'<base href="{LISTENER}/stolen-base/">',
    # parser tricks (mutation XSS) and encodings a careless decoder would turn into markup
    f"<math><mtext><table><mglyph><style><img src=x onerror={_SET}>",
    f'<noscript><p title="</noscript><img src=x onerror={_SET}>">',
    f'<!--<img src="--><img src=x onerror={_SET}>">',
    f"<scr<script>ipt>{_SET}</scr</script>ipt>",
    f"&lt;script&gt;{_SET}&lt;/script&gt;",
    f"%3Cscript%3E{_SET}%3C%2Fscript%3E",
    # unicode: right-to-left override, zero-width characters, full-width brackets
    f"\u202e<img src=x onerror={_SET}>\u202c gnp.txt",
    f"<scr\u200bipt>{_SET}</scr\u200bipt>",
    f"\uff1cscript\uff1e{_SET}\uff1c/script\uff1e",
)

# Payloads short enough for the shortest text column they are put in (service: 100
# characters), and free of "/" so one can be a path segment (a trace id in /ui/trace/<id>).
SHORT_LIMIT = 100


def payloads(listener: str) -> list[str]:
    """Every payload, with ``listener`` (``http://127.0.0.1:<port>``) for LISTENER."""
    return [payload.replace(LISTENER, listener) for payload in PAYLOADS]


def short(listener: str, limit: int = SHORT_LIMIT) -> list[str]:
    """The payloads of at most ``limit`` characters."""
    return [payload for payload in payloads(listener) if len(payload) <= limit]


def without_slash(listener: str, limit: int = SHORT_LIMIT) -> list[str]:
    """The short payloads with no "/", usable as one segment of a URL path."""
    return [payload for payload in short(listener, limit) if "/" not in payload]
