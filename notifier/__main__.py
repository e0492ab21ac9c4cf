from notifier.server import main

main()
