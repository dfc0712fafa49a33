"""``swarmstream budget show|set|clear|apply``: spending limits of specs and namespace.

A budget in USD and/or tokens, on one spec or on the whole namespace (``*``). Once
it is spent, workers stop claiming that spec's tasks (the whole namespace's, for
``*``): tasks in flight finish, the rest stay queued, nothing is lost. Raising or
clearing the budget resumes them (workers look with their next heartbeat).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from swarmstream.accounting import Budget, BudgetState
from swarmstream.cli.base import globals_of, guarded
from swarmstream.cli.common import connected, emit_json, quiet_pipe, run
from swarmstream.cli.render import console
from swarmstream.client import Swarm
from swarmstream.errors import ConfigError
from swarmstream.keys import validate_name

NAMESPACE = "*"

budget_app = typer.Typer(
    help="Budgets: stop claiming a spec's tasks (or all of them) once USD or tokens are spent.",
    no_args_is_help=True,
)

Target = Annotated[
    str, typer.Argument(metavar="SPEC", help="A specialization, or '*' for the whole namespace.")
]


def _spec(target: str) -> str | None:
    return None if target == NAMESPACE else validate_name("spec", target)


async def _states(swarm: Swarm) -> dict[str, BudgetState]:
    """Every budget set, with what it has spent (namespace first, as '*')."""
    t = swarm.transport
    out: dict[str, BudgetState] = {}
    if (ns := await t.budgets.namespace()) is not None:
        out[NAMESPACE] = ns
    specs = await swarm.results.specs()
    for spec, state in (await t.budgets.specs(specs)).items():
        if not state.budget.unlimited:
            out[spec] = state
    return out


def _show(states: dict[str, BudgetState], as_json: bool) -> None:
    with quiet_pipe():
        if as_json:
            emit_json({name: state.to_json() for name, state in states.items()})
            return
        if not states:
            typer.echo("no budgets set", err=True)
            return
        from rich.table import Table

        table = Table(title="budgets", title_justify="left")
        for col in ("spec", "usd", "spent usd", "tokens", "spent tokens", "state"):
            table.add_column(col, justify="left" if col in ("spec", "state") else "right")
        for name, s in states.items():
            b = s.budget
            table.add_row(
                name,
                "-" if b.usd is None else f"${b.usd:g}",
                f"${s.spent.cost_usd:.4f}",
                "-" if b.tokens is None else f"{b.tokens:,}",
                f"{s.spent.tokens:,}",
                f"paused: {s.paused_by}" if s.paused_by else "running",
            )
        console().print(table)


def budget_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Every budget, what it has spent, and whether it pauses work.

    Example: swarmstream budget show --json | jq '.research.usd_left'
    """
    settings = globals_of(ctx).settings()

    async def main() -> dict[str, BudgetState]:
        async with connected(settings) as swarm:
            return await _states(swarm)

    _show(run(main()), as_json)


def budget_set(
    ctx: typer.Context,
    target: Target,
    usd: Annotated[
        float | None, typer.Option("--usd", min=0, help="Limit in US dollars (cost).")
    ] = None,
    tokens: Annotated[
        int | None, typer.Option("--tokens", min=0, help="Limit in tokens (all kinds).")
    ] = None,
) -> None:
    """Set SPEC's budget (or the namespace's, with '*'), replacing the one it had.

    Examples: swarmstream budget set research --usd 5 ;
    swarmstream budget set '*' --usd 50 --tokens 20000000
    """
    if usd is None and tokens is None:
        raise ConfigError("give --usd and/or --tokens (use 'swarmstream budget clear' to remove)")
    spec = _spec(target)
    settings = globals_of(ctx).settings()
    budget = Budget(usd=usd, tokens=tokens)

    async def main() -> dict[str, BudgetState]:
        async with connected(settings) as swarm:
            await swarm.transport.budgets.set(spec, budget)
            return await _states(swarm)

    states = run(main())
    _show({target: states[target]} if target in states else {}, as_json=False)


def budget_clear(ctx: typer.Context, target: Target) -> None:
    """Remove SPEC's budget (or the namespace's, with '*'): its work resumes."""
    spec = _spec(target)
    settings = globals_of(ctx).settings()

    async def main() -> None:
        async with connected(settings) as swarm:
            await swarm.transport.budgets.set(spec, Budget())

    run(main())
    typer.echo(f"budget of {target} cleared", err=True)


def budget_apply(ctx: typer.Context) -> None:
    """Write the \\[budgets] tables of the --config file to Redis.

    Each \\[budgets.<spec>] (or \\[budgets."*"], the namespace) replaces that budget;
    budgets the file does not name are left as they are.

    Example: swarmstream --config configs/swarmstream.toml budget apply
    """
    settings = globals_of(ctx).settings()
    if not settings.budgets:
        raise ConfigError("no [budgets] in the config file (give one with --config)")
    wanted: dict[str, Any] = {
        name: Budget.from_config(f"[budgets.{name}]", value)
        for name, value in settings.budgets.items()
    }

    async def main() -> dict[str, BudgetState]:
        async with connected(settings) as swarm:
            for name, budget in wanted.items():
                await swarm.transport.budgets.set(_spec(name), budget)
            return await _states(swarm)

    states = run(main())
    _show({n: s for n, s in states.items() if n in wanted}, as_json=False)


budget_app.command("show")(guarded(budget_show))
budget_app.command("set")(guarded(budget_set))
budget_app.command("clear")(guarded(budget_clear))
budget_app.command("apply")(guarded(budget_apply))
