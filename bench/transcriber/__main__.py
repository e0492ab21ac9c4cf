from bench.transcriber.run import main

main()
