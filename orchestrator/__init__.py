"""The host side of liveorch: CLI, description model, plan, engine and exports."""
