from bench.facade.run import main

main()
