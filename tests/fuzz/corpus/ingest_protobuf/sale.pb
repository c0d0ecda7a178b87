
G
till-01-000001till-01€€±„é‘R#


SKU-000123Ç"EURb-1card