from afterimage_cli.cli import main

main()
