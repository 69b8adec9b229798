import typer

cli = typer.Typer()


def main() -> None:
    cli()
