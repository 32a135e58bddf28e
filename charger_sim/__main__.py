from charger_sim.cli.main import entry

entry()
