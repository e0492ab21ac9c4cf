from facade.app import main

main()
