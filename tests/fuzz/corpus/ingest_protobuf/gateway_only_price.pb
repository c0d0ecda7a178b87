

gdª
sAd"EUR