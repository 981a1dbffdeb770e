"""`softmax serve`: a local web page to draw a digit and watch the softmax, and the JSON API beside it.

app.py builds the Starlette application (create_app); the page's HTML, JavaScript and CSS are package data in
static/. Nothing here knows how to predict: the API calls predict.predict_image, as `softmax predict` does.
"""
