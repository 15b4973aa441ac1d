"""Services: persistence with the product's guarantees (one transaction per write, audit and NOTIFY inside it)."""
