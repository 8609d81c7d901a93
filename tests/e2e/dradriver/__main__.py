from tests.e2e.dradriver import main

main()
