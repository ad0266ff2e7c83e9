"""``hsmgate token issue``: mint a JWT bearer token with the configured signing key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hsmgate.auth.roles import Role
from hsmgate.commands.common import fail, load_settings
from hsmgate.settings import ConfigError

app = typer.Typer(help="JWT bearer tokens (claims: sub, partition, roles, iss, aud, exp, nbf, iat).",
                  no_args_is_help=True)


@app.command("issue")
def issue(
    sub: Annotated[str, typer.Option("--sub", help="Subject: who the token is for (audit log name)")],
    role: Annotated[list[Role], typer.Option("--role", help="A TSB role (repeat for several)")],
    partition: Annotated[str | None, typer.Option(help="Partition [default HSMGATE_PARTITION]")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime: seconds, or 15m / 8h / 7d")] = "15m",
    config: Annotated[Path | None, typer.Option(help="TOML configuration file [HSMGATE_CONFIG]")] = None,
) -> None:
    """Print a token signed with HSMGATE_JWT_SIGNING_KEY (or HSMGATE_JWT_HS256_SECRET)."""
    from hsmgate.auth.jwt_tokens import TokenIssuer, parse_ttl

    if config is not None:
        os.environ["HSMGATE_CONFIG"] = str(config)
    settings = load_settings()
    try:
        lifetime = parse_ttl(ttl)
        issuer = TokenIssuer.from_settings(settings)
    except (ValueError, ConfigError) as exc:
        fail(str(exc))
    if lifetime.total_seconds() > settings.jwt_max_lifetime:
        fail(f"--ttl {ttl} is longer than HSMGATE_JWT_MAX_LIFETIME ({settings.jwt_max_lifetime} s): "
             "the server would refuse the token")
    print(issuer.issue(subject=sub, partition=partition or settings.partition, roles=role, ttl=lifetime))
