from transcriber.server import main

main()
