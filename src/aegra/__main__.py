from aegra.cli import main

main()
