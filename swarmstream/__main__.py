from swarmstream.cli.app import main

main()
