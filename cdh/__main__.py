from cdh.cli import run

run()
