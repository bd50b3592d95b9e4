from snapdir.cli.fast import main

main()
