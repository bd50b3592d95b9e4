from snapdir.cli.main import main

main()
