"""The code that runs inside the stage containers, and the contract both sides import."""
