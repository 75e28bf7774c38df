"""``irc cache info|clear``: inspect or empty the compile cache.

The directory is the one a compile would use: the ``cache.dir`` key
(``--config``/``--set cache.dir=...``), whose default is $IRC_CACHE_DIR,
$XDG_CACHE_HOME/irc or ~/.cache/irc.
"""

from __future__ import annotations

import argparse

from irc.cache import CompileCache
from irc.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["info", "clear"], help="info: entries and size; "
                        "clear: delete every entry")
    parser.add_argument("--config", metavar="YAML", help="configuration file (for cache.dir)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one configuration value, e.g. cache.dir=/tmp/irc")


def run(args: argparse.Namespace) -> int:
    config = Config.from_options(None, yaml_path=args.config, sets=args.sets)
    cache = CompileCache(config.cache.dir or None)
    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.dir}")
        return 0
    info = cache.info()
    state = "enabled" if config.cache.enabled else "disabled"
    print(f"directory: {info.dir}\nentries:   {info.entries}\nsize:      {_human(info.bytes)} "
          f"({info.bytes} bytes)\nstatus:    {state}")
    return 0


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
